/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"

int
vh_strlcpy_checked(char *dst, const char *src, size_t size)
{
	size_t len = strnlen(src, size);

	if (len >= size) {
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

static int
parse_list(const char *s, uint64_t *mask)
{
	uint64_t m = 0;
	const char *p = s + 1;

	for (;;) {
		char *end;
		unsigned long a, b;

		if (!isdigit((unsigned char)*p)) {
			return -EINVAL;
		}
		a = strtoul(p, &end, 10);
		b = a;
		p = end;
		if (*p == '-') {
			p++;
			if (!isdigit((unsigned char)*p)) {
				return -EINVAL;
			}
			b = strtoul(p, &end, 10);
			p = end;
		}
		if (a > b || b >= 64) {
			return -EINVAL;
		}
		for (unsigned long i = a; i <= b; i++) {
			m |= 1ull << i;
		}
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == ']' && p[1] == '\0') {
			break;
		}
		return -EINVAL;
	}
	*mask = m;
	return 0;
}

int
vh_parse_cpumask(const char *s, uint64_t *mask)
{
	const char *p;
	char *end;
	unsigned long long v;

	if (s == NULL || *s == '\0') {
		return -EINVAL;
	}
	if (s[0] == '[') {
		return parse_list(s, mask);
	}
	/* strtoull would take leading blanks and a sign ("-1" = all cores): refuse both. */
	p = s;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		p += 2;
	}
	if (!isxdigit((unsigned char)*p)) {
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(s, &end, 16);
	if (errno != 0 || *end != '\0' || v == 0) {
		return -EINVAL;
	}
	*mask = v;
	return 0;
}

int
vh_fd_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		return -errno;
	}
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		return -errno;
	}
	return 0;
}

int
vh_fd_set_cloexec(int fd)
{
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		return -errno;
	}
	return 0;
}

bool
vh_uuid_valid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (strlen(s) != sizeof(shape) - 1) {
		return false;
	}
	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

int
vh_unix_unlink_stale(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, err;

	if (vh_strlcpy_checked(sa.sun_path, path, sizeof(sa.sun_path)) < 0) {
		return -ENAMETOOLONG;
	}
	if (lstat(path, &st) < 0) {
		return errno == ENOENT ? 0 : -errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		return -EEXIST;
	}
	/*
	 * Non-blocking, so a listener with a full backlog answers EAGAIN instead of stalling us.
	 * A probe that reaches a live listener sits in its backlog until we close it; the server
	 * then sees a connection that closed at once, which every server must survive anyway.
	 */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -errno;
	}
	err = connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0 ? errno : 0;
	close(fd);
	switch (err) {
	case ECONNREFUSED:
		break; /* the only answer that proves nobody is bound there */
	case ENOENT:
		return 0; /* removed meanwhile */
	case 0:
	case EAGAIN:
	case EINPROGRESS:
	case EPROTOTYPE: /* a datagram or seqpacket socket is bound there: in use too */
		return -EADDRINUSE;
	default:
		return -err;
	}
	if (unlink(path) < 0) {
		return errno == ENOENT ? 0 : -errno;
	}
	return 1;
}

/* The calibration's start, taken before main() so the first vh_ticks_hz() rarely waits. */
static uint64_t g_cal_ticks, g_cal_ns;
static uint64_t g_ticks_hz, g_ticks_mult;

__attribute__((constructor)) static void
ticks_cal_start(void)
{
	g_cal_ns = vh_now_ns();
	g_cal_ticks = vh_ticks();
}

#define TICKS_CAL_NS (20ull * 1000000ull)

uint64_t
vh_ticks_hz(void)
{
	uint64_t hz = __atomic_load_n(&g_ticks_hz, __ATOMIC_ACQUIRE);
	uint64_t ns, ticks;

	if (hz != 0) {
		return hz;
	}
	ns = vh_now_ns() - g_cal_ns;
	if (ns < TICKS_CAL_NS) {
		struct timespec ts = {0, (long)(TICKS_CAL_NS - ns)};

		nanosleep(&ts, NULL);
	}
	ticks = vh_ticks() - g_cal_ticks;
	ns = vh_now_ns() - g_cal_ns;
	hz = (uint64_t)((unsigned __int128)ticks * 1000000000u / (ns ? ns : 1));
	if (hz == 0) {
		hz = 1000000000u;
	}
	/* Several threads may race here: they compute nearly the same value, any one will do. */
	__atomic_store_n(&g_ticks_mult, (uint64_t)((1000000000ull << 32) / hz), __ATOMIC_RELAXED);
	/* Pairs with the acquire load above: the multiplier is set before the rate is seen. */
	__atomic_store_n(&g_ticks_hz, hz, __ATOMIC_RELEASE);
	return hz;
}

uint64_t
vh_ticks_ns_mult(void)
{
	vh_ticks_hz();
	return __atomic_load_n(&g_ticks_mult, __ATOMIC_RELAXED);
}

static const char *g_version = "0.0.0";

const char *
vh_version(void)
{
	return g_version;
}

void
vh_version_set(const char *v)
{
	g_version = v;
}
