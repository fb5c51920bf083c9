/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "core/evloop.h"
#include "core/log.h"

struct vh_evsource {
	int fd;
	bool dead;
	bool is_timer;
	vh_ev_cb cb;
	void *arg;
	struct vh_evloop *loop;
	struct vh_evsource *next_dead;
	struct vh_evsource *next_live, **pprev_live; /* every live source, for destroy */
};

struct vh_evloop {
	int epfd;
	bool running;
	pthread_t owner;
	struct vh_evsource *dead; /* freed after the current batch */
	struct vh_evsource *live;
	struct vh_evsource *msg_src;
	struct vh_msgq msgq;
};

static struct vh_evloop *g_main;

struct vh_evloop *
vh_evloop_main(void)
{
	return g_main;
}

bool
vh_on_control_thread(void)
{
	return g_main != NULL && pthread_equal(pthread_self(), g_main->owner);
}

static void
msg_ready(void *arg, uint32_t events)
{
	struct vh_evloop *loop = arg;
	uint64_t v;

	if (read(loop->msgq.efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: spurious wakeup. */
	}
	/* Bounded so a flood of reactor replies cannot starve sockets. */
	vh_msgq_drain(&loop->msgq, 256);
	/* More left: make the eventfd readable again so we come back after other sources. */
	if (vh_msgq_prepare_sleep(&loop->msgq) == false) {
		uint64_t one = 1;
		if (write(loop->msgq.efd, &one, sizeof(one)) < 0) {
			/* Saturated counter: already readable. */
		}
	}
	vh_msgq_set_always_wake(&loop->msgq);
}

struct vh_evloop *
vh_evloop_create(void)
{
	struct vh_evloop *loop = calloc(1, sizeof(*loop));
	int rc;

	if (loop == NULL) {
		return NULL;
	}
	loop->owner = pthread_self();
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		goto out_free;
	}
	rc = vh_msgq_init(&loop->msgq);
	if (rc < 0) {
		errno = -rc;
		goto out_ep;
	}
	vh_msgq_set_always_wake(&loop->msgq);
	loop->msg_src = vh_evloop_add(loop, loop->msgq.efd, EPOLLIN, msg_ready, loop);
	if (loop->msg_src == NULL) {
		goto out_q;
	}
	g_main = loop;
	return loop;

out_q:
	vh_msgq_fini(&loop->msgq);
out_ep:
	close(loop->epfd);
out_free:
	free(loop);
	return NULL;
}

static void
free_dead(struct vh_evloop *loop)
{
	while (loop->dead) {
		struct vh_evsource *s = loop->dead;

		loop->dead = s->next_dead;
		if (s->is_timer) {
			close(s->fd);
		}
		free(s);
	}
}

void
vh_evloop_destroy(struct vh_evloop *loop)
{
	if (loop == NULL) {
		return;
	}
	/* Whatever is still registered (the signal fd, a pending timer) goes with the loop. */
	while (loop->live != NULL) {
		vh_evloop_del(loop->live);
	}
	free_dead(loop);
	vh_msgq_fini(&loop->msgq);
	close(loop->epfd);
	if (g_main == loop) {
		g_main = NULL;
	}
	free(loop);
}

struct vh_evsource *
vh_evloop_add(struct vh_evloop *loop, int fd, uint32_t events, vh_ev_cb cb, void *arg)
{
	struct vh_evsource *s = calloc(1, sizeof(*s));
	struct epoll_event ev = {.events = events};

	if (s == NULL) {
		return NULL;
	}
	s->fd = fd;
	s->cb = cb;
	s->arg = arg;
	s->loop = loop;
	ev.data.ptr = s;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(s);
		return NULL;
	}
	s->next_live = loop->live;
	if (loop->live) {
		loop->live->pprev_live = &s->next_live;
	}
	s->pprev_live = &loop->live;
	loop->live = s;
	return s;
}

int
vh_evloop_mod(struct vh_evsource *s, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = s};

	if (epoll_ctl(s->loop->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0) {
		return -errno;
	}
	return 0;
}

void
vh_evloop_del(struct vh_evsource *s)
{
	if (s == NULL || s->dead) {
		return;
	}
	epoll_ctl(s->loop->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	*s->pprev_live = s->next_live;
	if (s->next_live) {
		s->next_live->pprev_live = s->pprev_live;
	}
	s->dead = true;
	s->next_dead = s->loop->dead;
	s->loop->dead = s;
}

struct vh_evsource *
vh_evloop_timer(struct vh_evloop *loop, uint64_t ns, vh_ev_cb cb, void *arg)
{
	struct itimerspec its = {0};
	struct vh_evsource *s;
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

	if (fd < 0) {
		return NULL;
	}
	if (ns == 0) {
		ns = 1;
	}
	its.it_value.tv_sec = (time_t)(ns / 1000000000ull);
	its.it_value.tv_nsec = (long)(ns % 1000000000ull);
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		close(fd);
		return NULL;
	}
	s = vh_evloop_add(loop, fd, EPOLLIN, cb, arg);
	if (s == NULL) {
		close(fd);
		return NULL;
	}
	s->is_timer = true;
	return s;
}

int
vh_evloop_run(struct vh_evloop *loop)
{
	struct epoll_event evs[64];

	loop->running = true;
	while (loop->running) {
		int n = epoll_wait(loop->epfd, evs, 64, -1);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			VH_ERR("evloop", "epoll_wait: %s", strerror(errno));
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct vh_evsource *s = evs[i].data.ptr;

			if (s->dead) {
				continue;
			}
			if (s->is_timer) {
				/* One-shot: retire before the callback so it may re-arm freely. */
				vh_evloop_del(s);
				s->cb(s->arg, 0);
				continue;
			}
			s->cb(s->arg, evs[i].events);
		}
		free_dead(loop);
	}
	return 0;
}

void
vh_evloop_stop(struct vh_evloop *loop)
{
	loop->running = false;
}

int
vh_control_send(vh_msg_fn fn, void *arg)
{
	if (g_main == NULL) {
		return -ENODEV;
	}
	return vh_msgq_send(&g_main->msgq, fn, arg);
}

void
vh_control_post(struct vh_msg_node *n)
{
	/* No control loop (a unit test driving a reactor alone): nobody would ever run it. */
	if (g_main != NULL) {
		vh_msgq_post(&g_main->msgq, n);
	}
}
