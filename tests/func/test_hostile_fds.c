/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A hostile front-end must not stop other guests: regressions for the hardening review's
 * findings on fds and shared memory the front-end hands us, against a running vhostd with one
 * reactor, where a witness controller (its own front-end) must keep doing verified I/O and the
 * daemon must keep answering RPCs and stop cleanly on SIGTERM:
 *   - a call eventfd made blocking and saturated (our write would block the reactor);
 *   - a kick eventfd made blocking and drained by the front-end (our read would block);
 *   - a back-end channel made blocking with a tiny send buffer that nobody reads (the control
 *     thread's config-change notice would block it);
 *   - more completions in one reactor iteration than a queue has request slots (resubmitted
 *     requests after a restart plus newly posted ones, all completing at once), and the same
 *     heads re-posted before they were used;
 *   - an inflight region whose desc_num the front-end flips while we recover from it (the
 *     deterministic check of that one is tests/unit/vhost/test_regress_inflight_race.c; here
 *     the daemon must survive it end to end).
 */
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <sys/socket.h>

#include "test_hostile_common.h"

#define F_NR (VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK)

struct hsess {
	struct vh_fe_mem *mem;
	struct vh_fe *fe;
};

static int
hsess_open(const char *sock, struct hsess *s, const struct vh_fe_opts *fo0, bool start)
{
	struct vh_fe_mem_opts mo = {.size = 16 << 20};
	struct vh_fe_opts fo = *fo0;
	int rc;

	fo.path = sock;
	fo.ack_all = true;
	memset(s, 0, sizeof(*s));
	T_OK(vh_fe_mem_create(&s->mem, &mo));
	rc = vh_fe_create(&s->fe, s->mem, &fo);
	if (rc == 0) {
		rc = vh_fe_connect(s->fe, 5000);
	}
	if (rc == 0) {
		rc = vh_fe_init(s->fe, true);
	}
	if (rc == 0 && start) {
		rc = vh_fe_start(s->fe, 0, 0);
	}
	T_CHECK(rc == 0, "front-end on %s: %s", sock, strerror(-rc));
	return 0;
}

static void
hsess_close(struct hsess *s)
{
	vh_test_fe_close(s->mem, s->fe);
	memset(s, 0, sizeof(*s));
}

/* Send a per-queue fd message with NEED_REPLY; returns the ack (0 = accepted) or -errno. */
static int
send_vring_fd(struct vh_fe *fe, uint32_t req, unsigned q, int fd)
{
	uint64_t v = q, ack = ~0ull;
	int rc = vh_fe_call(fe, req, F_NR, &v, sizeof(v), &fd, 1, &ack, sizeof(ack));

	return rc < 0 ? rc : (int)ack;
}

/* A one-descriptor-buffer GET_ID request on queue q, data in guest RAM. */
static int
get_id_req(struct vh_fe_mem *mem, struct vh_fe_req *r, struct vh_fe_iov *iov)
{
	uint64_t gpa = vh_fe_mem_alloc(mem, 32, 8);

	T_CHECK(gpa != UINT64_MAX, "guest RAM exhausted");
	memset(r, 0, sizeof(*r));
	iov->gpa = gpa;
	iov->len = 20;
	r->type = VIRTIO_BLK_T_GET_ID;
	r->iov = iov;
	r->niov = 1;
	r->layout = VH_FE_L_INDIRECT; /* one descriptor per request in the ring */
	return 0;
}

/* Poll queue vq until n requests completed or timeout; returns how many did. */
static unsigned
reap_n(struct vh_fe_vq *vq, unsigned n, int timeout_ms)
{
	int64_t deadline = vh_fe_now_ms() + timeout_ms;
	unsigned got = 0;

	while (got < n && vh_fe_now_ms() < deadline) {
		int k = vh_fe_vq_poll(vq, NULL, 0);

		if (k < 0) {
			break;
		}
		got += (unsigned)k;
		if (k == 0) {
			poll(NULL, 0, 1); /* re-check interval, bounded by the deadline */
		}
	}
	return got;
}

static int
rpc_alive(struct vh_target *t)
{
	json_t *res = NULL;

	T_OK(vh_rpc_call(t->d.rpc_path, "vhost_get_controllers", NULL, &res, NULL, NULL, 0, 3000));
	json_decref(res);
	return 0;
}

/* ---- 1. a blocking call eventfd with a saturated counter ---- */

static int
t_call_saturated(struct vh_target *t, struct witness *w)
{
	struct vh_fe_opts fo = {.num_queues = 1};
	uint64_t big = 0xfffffffffffffffeull;
	struct vh_fe_req req;
	struct vh_fe_iov iov;
	struct hsess s;
	int hfd = eventfd(0, EFD_CLOEXEC); /* blocking, on purpose */

	T_CHECK(hfd >= 0, "eventfd: %s", strerror(errno));
	T_OK(hsess_open(t->sock, &s, &fo, true));
	T_CHECK(write(hfd, &big, sizeof(big)) == sizeof(big), "saturate: %s", strerror(errno));
	T_CHECK(send_vring_fd(s.fe, VHOST_USER_SET_VRING_CALL, 0, hfd) == 0,
	        "SET_VRING_CALL refused");
	/* The driver wants interrupts, so completing the request writes the call fd. */
	vh_fe_vq_set_mode(vh_fe_vq(s.fe, 0), VH_FE_INTERRUPT);
	T_OK(get_id_req(s.mem, &req, &iov));
	T_OK(vh_fe_req_submit(vh_fe_vq(s.fe, 0), &req));
	vh_fe_vq_arm(vh_fe_vq(s.fe, 0));
	T_CHECK(vh_fe_wait_closed(s.fe, 5000) == 0,
	        "a front-end that saturated its call eventfd was not disconnected");
	T_OK(witness_check(t, w));
	T_OK(rpc_alive(t));
	hsess_close(&s);
	close(hfd);
	T_OK(hostile_wait_disconnected(t, t->name, 5000));
	return 0;
}

/* ---- 2. a blocking kick eventfd the front-end drains itself ---- */

struct drainer {
	int fd;
	int stop;
	uint64_t reads;
};

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
spin_us(unsigned us)
{
	int64_t end = now_us() + us;

	while (now_us() < end) {
	}
}

/*
 * Drain every kick, a random few microseconds after it became readable: somewhere in that
 * range lies the moment after a sleeping reactor's epoll_wait() reported the fd and before it
 * would read it. A reactor that reads then blocks, because the fd is in blocking mode.
 */
static void *
drain_thread(void *arg)
{
	struct drainer *d = arg;
	uint64_t v, rng = 0x9e3779b97f4a7c15ull;

	while (!__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd pfd = {.fd = d->fd, .events = POLLIN};

		if (poll(&pfd, 1, 0) != 1) {
			continue;
		}
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		spin_us((unsigned)(rng % 8));
		if (read(d->fd, &v, sizeof(v)) == sizeof(v)) {
			__atomic_add_fetch(&d->reads, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

static int
t_kick_drained(struct vh_target *t, struct witness *w)
{
	struct vh_fe_opts fo = {.num_queues = 1};
	struct drainer d = {.fd = eventfd(0, EFD_CLOEXEC)}; /* blocking, on purpose */
	struct vh_fe_req req;
	struct vh_fe_iov iov;
	struct hsess s;
	pthread_t th;
	uint64_t one = 1;
	int rc = -1;

	T_CHECK(d.fd >= 0, "eventfd: %s", strerror(errno));
	T_OK(hsess_open(t->sock, &s, &fo, true));
	T_CHECK(send_vring_fd(s.fe, VHOST_USER_SET_VRING_KICK, 0, d.fd) == 0,
	        "SET_VRING_KICK refused");
	T_CHECK(pthread_create(&th, NULL, drain_thread, &d) == 0, "pthread_create");
	T_OK(get_id_req(s.mem, &req, &iov));
	/*
	 * Each round lets the reactor fall asleep (idle after 100 us), then posts a request and
	 * kicks: the front-end's thread and the reactor both wake, and the thread reads first
	 * more often than not. A reactor that read the kick fd would block in that read.
	 */
	for (int i = 0; i < 40; i++) {
		poll(NULL, 0, 2); /* let the reactor go idle and sleep */
		if (vh_fe_req_queue(vh_fe_vq(s.fe, 0), &req) < 0) {
			goto out;
		}
		vh_fe_vq_flush(vh_fe_vq(s.fe, 0));
		/*
		 * When the front-end drains the kick before the sleeping reactor looks, epoll has
		 * nothing to report and the reactor wakes at its 1 s timeout: the front-end slows
		 * only itself down.
		 */
		if (write(d.fd, &one, sizeof(one)) != sizeof(one) ||
		    reap_n(vh_fe_vq(s.fe, 0), 1, 3000) != 1) {
			fprintf(stderr, "FAIL: round %d: request not completed after a kick\n", i);
			goto out;
		}
		if (i % 5 == 0 && witness_check(t, w) < 0) {
			goto out;
		}
	}
	fprintf(stderr, "kick drained: 40 rounds, the front-end drained %llu kicks itself\n",
	        (unsigned long long)__atomic_load_n(&d.reads, __ATOMIC_RELAXED));
	rc = 0;
out:
	__atomic_store_n(&d.stop, 1, __ATOMIC_RELEASE);
	if (write(d.fd, &one, sizeof(one)) < 0) { /* wake the drainer */
	}
	pthread_join(th, NULL);
	hsess_close(&s);
	close(d.fd);
	if (rc == 0) {
		T_OK(witness_check(t, w));
		T_OK(hostile_wait_disconnected(t, t->name, 5000));
	}
	return rc;
}

/* ---- 3. a back-end channel nobody reads, made blocking ---- */

static int
t_backend_channel_full(struct vh_target *t, struct witness *w)
{
	struct vh_fe_opts fo = {.num_queues = 1};
	char img[160], sock[108];
	struct hsess s;
	int sp[2], fd, small = 1, zero = 0, i;
	int64_t t0;
	json_t *p;

	snprintf(img, sizeof(img), "%s/resize.img", t->d.dir);
	fd = open(img, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	T_CHECK(fd >= 0 && ftruncate(fd, 4 << 20) == 0, "image: %s", strerror(errno));
	p = json_pack("{s:s, s:s}", "filename", img, "name", "Resize0");
	T_OK(vh_target_rpc(t, "bdev_uring_create", p, NULL));
	p = json_pack("{s:s, s:s, s:s}", "ctrlr", "resize.0", "dev_name", "Resize0", "cpumask",
	              "0x1");
	T_OK(vh_target_rpc(t, "vhost_create_blk_controller", p, NULL));
	vh_daemon_path(&t->d, "resize.0", sock, sizeof(sock));
	T_OK(hsess_open(sock, &s, &fo, true));
	/* Our end of the channel: the smallest send buffer, blocking, and never read. */
	T_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0, "socketpair");
	setsockopt(sp[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	T_CHECK(vh_fe_call(s.fe, VHOST_USER_SET_BACKEND_REQ_FD, F_NR, NULL, 0, &sp[1], 1, &zero,
	                   sizeof(zero)) == 8 &&
	                zero == 0,
	        "SET_BACKEND_REQ_FD refused");
	fcntl(sp[1], F_SETFL, 0); /* we keep the same open file: make it blocking again */
	t0 = vh_fe_now_ms();
	for (i = 0; i < 64; i++) {
		T_CHECK(ftruncate(fd, (off_t)(4 + i + 1) << 20) == 0, "grow: %s", strerror(errno));
		p = json_pack("{s:s}", "name", "Resize0");
		T_CHECK(vh_rpc_call(t->d.rpc_path, "bdev_uring_rescan", p, NULL, NULL, NULL, 0,
		                    3000) == 0,
		        "rescan %d did not answer: the control thread is blocked", i);
	}
	fprintf(stderr, "back-end channel full: 64 resizes in %lld ms\n",
	        (long long)(vh_fe_now_ms() - t0));
	T_OK(witness_check(t, w));
	hsess_close(&s);
	close(sp[0]);
	close(sp[1]);
	close(fd);
	T_OK(hostile_wait_disconnected(t, "resize.0", 5000));
	T_OK(vh_target_rpc(t, "vhost_delete_controller", json_pack("{s:s}", "ctrlr", "resize.0"),
	                   NULL));
	return 0;
}

/* ---- 4. more completions in one iteration than request slots ---- */

/* The spec's split inflight layout (vhost-user.rst), queue 0 at offset 0 of our mapping. */
struct ifl_desc {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;
	uint64_t counter;
};
struct ifl_queue {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t last_batch_head;
	uint16_t used_idx;
	struct ifl_desc desc[];
};

/*
 * While disconnected (as if vhostd had crashed), post @nmarked requests and mark them in flight
 * in the region, as the dead instance would have; then post @nnew more; reconnect. The marked
 * ones are resubmitted at start and the new ones fetched in the same reactor iteration; all of
 * them complete at once (GET_ID completes synchronously).
 */
static int
resubmit_burst(struct vh_target *t, unsigned qsize, unsigned nmarked, unsigned nnew,
               bool reuse_heads, unsigned *completed)
{
	struct vh_fe_opts fo = {.num_queues = 1, .queue_size = qsize, .inflight = true};
	unsigned total = nmarked + nnew;
	struct vh_fe_req *reqs = calloc(total, sizeof(*reqs));
	struct vh_fe_iov *iovs = calloc(total, sizeof(*iovs));
	struct vh_fe_vq_stats st;
	struct ifl_queue *q;
	struct vh_fe_vq *vq;
	struct hsess s;
	uint64_t size;
	int rc = -1;

	T_CHECK(reqs != NULL && iovs != NULL, "calloc");
	*completed = 0;
	if (hsess_open(t->sock, &s, &fo, true) < 0) {
		goto out_free;
	}
	vq = vh_fe_vq(s.fe, 0);
	q = vh_fe_inflight_map(s.fe, &size);
	if (q == NULL || q->version != 1 || q->desc_num != qsize) {
		fprintf(stderr, "FAIL: no usable inflight region\n");
		goto out;
	}
	vh_fe_disconnect(s.fe);
	T_OK(hostile_wait_disconnected(t, t->name, 5000));
	for (unsigned i = 0; i < total; i++) {
		if (get_id_req(s.mem, &reqs[i], &iovs[i]) < 0) {
			goto out;
		}
	}
	for (unsigned i = 0; i < nmarked; i++) {
		int r = vh_fe_req_queue(vq, &reqs[i]);

		if (r < 0) {
			fprintf(stderr, "FAIL: queue request %u: %s\n", i, strerror(-r));
			goto out;
		}
		q->desc[reqs[i].head].counter = i + 1;
		q->desc[reqs[i].head].inflight = 1;
	}
	for (unsigned i = nmarked; i < total; i++) {
		if (reuse_heads) {
			/* The same heads again, before they were ever used: a hostile driver. */
			struct vring_avail *a = vh_fe_vq_avail(vq);
			uint16_t idx = le16toh(a->idx) + (uint16_t)(i - nmarked);

			a->ring[idx % qsize] = htole16(reqs[i - nmarked].head);
			continue;
		}
		int r = vh_fe_req_queue(vq, &reqs[i]);

		if (r < 0) {
			fprintf(stderr, "FAIL: queue request %u: %s\n", i, strerror(-r));
			goto out;
		}
	}
	if (reuse_heads) {
		vh_fe_vq_flush(vq);
		__atomic_store_n(&vh_fe_vq_avail(vq)->idx,
		                 htole16(le16toh(vh_fe_vq_avail(vq)->idx) + (uint16_t)nnew),
		                 __ATOMIC_RELEASE);
	} else {
		vh_fe_vq_flush(vq);
	}
	if (vh_fe_reconnect(s.fe, 10000) < 0) {
		/* A hostile ring may get the session closed; that is a fine outcome. */
		rc = reuse_heads ? 0 : -1;
		fprintf(stderr, "%s: reconnect refused\n", reuse_heads ? "ok" : "FAIL");
		goto out;
	}
	if (reuse_heads) {
		/*
		 * Our own bookkeeping knows only the first posting of each head, so count used
		 * entries: the heads come back once each, and the re-posted ones either wait until
		 * the first were used (then they are legal and complete too) or close the session.
		 */
		struct vring_used *u = vh_fe_vq_used(vq);
		uint16_t used0 = vh_fe_vq_base(vq);
		int64_t deadline = vh_fe_now_ms() + 5000;

		while (vh_fe_now_ms() < deadline &&
		       (uint16_t)(le16toh(__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE)) - used0) <
		               total &&
		       vh_fe_wait_closed(s.fe, 1) == -ETIMEDOUT) {
		}
		*completed =
		        (uint16_t)(le16toh(__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE)) - used0);
		rc = 0;
		goto out;
	}
	*completed = reap_n(vq, total, 5000);
	vh_fe_vq_stats(vq, &st);
	T_CHECK(st.bad_used == 0, "%llu used entries had a bad or duplicate id",
	        (unsigned long long)st.bad_used);
	rc = 0;
out:
	hsess_close(&s);
out_free:
	free(reqs);
	free(iovs);
	return rc;
}

static int
t_completion_burst(struct vh_target *t, struct witness *w)
{
	unsigned done;

	/* 512 (all slots) resubmitted + 64 new, distinct heads: a legitimate guest after a crash.
	 */
	T_OK(resubmit_burst(t, 1024, 512, 64, false, &done));
	T_CHECK(done == 576, "%u of 576 requests completed", done);
	T_OK(witness_check(t, w));
	T_OK(hostile_wait_disconnected(t, t->name, 5000));
	/* The review's case: queue size 4, 4 marked, the same 4 heads posted again. */
	T_OK(resubmit_burst(t, 4, 4, 4, true, &done));
	fprintf(stderr, "reused heads: %u of 8 completed (the rest closed the session)\n", done);
	T_CHECK(done <= 4 || done == 8, "%u completions for 4 distinct heads", done);
	T_OK(witness_check(t, w));
	T_OK(hostile_wait_disconnected(t, t->name, 5000));
	return 0;
}

/* ---- 5. desc_num flipped while we read the inflight region ---- */

struct flipper {
	uint16_t *field;
	uint16_t a, b;
	int stop;
};

/*
 * A legal-looking desc_num for a moment (smaller than the ring: "the ring size changed", whose
 * check walks desc_num entries), then 0xffff for a little longer: a reader that re-reads it as
 * its loop bound walks off the mapping.
 */
static void *
flip_thread(void *arg)
{
	struct flipper *f = arg;

	while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(f->field, f->a, __ATOMIC_RELAXED);
		spin_us(1);
		__atomic_store_n(f->field, f->b, __ATOMIC_RELAXED);
		spin_us(3);
	}
	__atomic_store_n(f->field, (uint16_t)128, __ATOMIC_RELAXED);
	return NULL;
}

static int
t_inflight_flip(struct vh_target *t, struct witness *w)
{
	struct vh_fe_opts fo = {.num_queues = 1, .queue_size = 128, .inflight = true};
	struct flipper f = {.a = 64, .b = 0xffff};
	unsigned ok = 0, refused = 0;
	struct ifl_queue *q;
	struct hsess s;
	pthread_t th;
	uint64_t size;

	T_OK(hsess_open(t->sock, &s, &fo, true));
	q = vh_fe_inflight_map(s.fe, &size);
	T_CHECK(q != NULL && q->version == 1, "no inflight region");
	f.field = &q->desc_num;
	T_CHECK(pthread_create(&th, NULL, flip_thread, &f) == 0, "pthread_create");
	for (int i = 0; i < 100; i++) {
		int rc;

		/* A full start each time (SET_INFLIGHT_FD, then the rings): recovery runs. */
		vh_fe_disconnect(s.fe);
		rc = vh_fe_connect(s.fe, 5000);
		if (rc == 0) {
			rc = vh_fe_init(s.fe, false);
		}
		if (rc == 0) {
			rc = vh_fe_start(s.fe, 0, 0);
		}
		if (rc == 0) {
			ok++;
		} else {
			refused++;
		}
		T_CHECK(vh_daemon_alive(&t->d), "daemon died after %d reconnects", i + 1);
	}
	__atomic_store_n(&f.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	fprintf(stderr, "inflight desc_num flipping: %u reconnects served, %u refused\n", ok,
	        refused);
	T_OK(witness_check(t, w));
	hsess_close(&s);
	T_OK(hostile_wait_disconnected(t, t->name, 5000));
	return 0;
}

int
main(void)
{
	struct vh_target_opts to = {.num_blocks = 8192};
	struct witness w;
	struct vh_target t;
	int fail = 0, rc;

	if (vh_test_qsd()) {
		fprintf(stderr, "SKIP: vhostd-only\n");
		return VH_TEST_SKIP;
	}
	hostile_asan_env();
	rc = vh_target_start(&t, &to);
	if (rc) {
		return rc == VH_TEST_SKIP ? VH_TEST_SKIP : VH_TEST_FAIL;
	}
	if (witness_open(&t, &w) < 0 || witness_check(&t, &w) < 0) {
		vh_target_stop(&t);
		return VH_TEST_FAIL;
	}
	/* HOSTILE_ONLY=t_kick_drained runs one case (to check it against an older build). */
	const char *only = getenv("HOSTILE_ONLY");
#define RUN(x)                                                                                     \
	do {                                                                                       \
		if (only != NULL && strncmp(#x, only, strlen(only)) != 0) {                        \
			break;                                                                     \
		}                                                                                  \
		fprintf(stderr, "--- %s\n", #x);                                                   \
		if ((x) < 0 || witness_check(&t, &w) < 0) {                                        \
			fprintf(stderr, "FAIL: %s\n", #x);                                         \
			fail = 1;                                                                  \
		}                                                                                  \
	} while (0)
	RUN(t_call_saturated(&t, &w));
	RUN(t_kick_drained(&t, &w));
	RUN(t_backend_channel_full(&t, &w));
	RUN(t_completion_burst(&t, &w));
	RUN(t_inflight_flip(&t, &w));
	witness_close(&w);
	if (vh_target_stop(&t) < 0) {
		fail = 1;
	}
	fprintf(stderr, "test_hostile_fds: %s\n", fail ? "FAIL" : "PASS");
	return fail ? VH_TEST_FAIL : VH_TEST_PASS;
}
