/* SPDX-License-Identifier: BSD-3-Clause */
/* The uring back-end's unit tests, run against the aio back-end (same semantics). */
#define VH_TEST_ENGINE_AIO 1
#include "test_uring.c"
