/*
 * remapsim_io: the optional native fast path of the engine's data plane,
 * loaded with koffi by src/sys/native-io.ts.
 *
 *  - rs_batch: n synchronous pread/pwrite/fdatasync calls in one FFI call;
 *    rs_batch_timed also reads the clock around each (the runner's reads).
 *  - rs_queue: a queue of up to `depth` operations that either runs as a
 *    synchronous batch (mode 0) or goes through an io_uring (mode 1), so a
 *    single worker thread can keep `depth` O_DIRECT reads in flight.
 *
 * io_uring is driven with the raw syscalls (io_uring_setup, io_uring_enter,
 * io_uring_register and mmap of the rings) rather than liburing: the part we
 * need is small, it needs only <linux/io_uring.h> (linux-libc-dev, which every
 * Debian gcc toolchain already has), and the build then has no dependency that
 * CI or a user must install.
 *
 * Buffers are plain memory addresses. io_uring reads into a buffer after the
 * call that submitted it has returned, so the memory must not move or be freed
 * while the operation is in flight: the JavaScript side only hands over native
 * memory (posix_memalign through koffi), never a pointer koffi made for the
 * duration of one call.
 *
 * All results are what the kernel returns: a byte count, or -errno.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RS_ABI_VERSION 2
#define RS_MAX_DEPTH 4096

#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN (1U << 1)
#endif

enum { RS_OP_READ = 0, RS_OP_WRITE = 1, RS_OP_FDATASYNC = 2 };
enum { RS_MODE_BATCH = 0, RS_MODE_URING = 1 };

/* One operation as JavaScript writes it: eight little-endian u32 words. */
struct rs_op {
	uint64_t addr;
	uint64_t offset;
	uint32_t len;
	int32_t fd;
	uint32_t op;
	uint32_t user_data;
};
_Static_assert(sizeof(struct rs_op) == 32, "rs_op is 32 bytes (8 words) on the JS side");

int rs_abi_version(void) { return RS_ABI_VERSION; }

/* The address koffi passed for a pointer argument (for a koffi.view of native memory: that memory). */
uint64_t rs_address(const void *p) { return (uint64_t)(uintptr_t)p; }

static int32_t run_one(const struct rs_op *o)
{
	ssize_t r;
	void *buf = (void *)(uintptr_t)o->addr;
	switch (o->op) {
	case RS_OP_READ:
		r = pread(o->fd, buf, o->len, (off_t)o->offset);
		break;
	case RS_OP_WRITE:
		r = pwrite(o->fd, buf, o->len, (off_t)o->offset);
		break;
	case RS_OP_FDATASYNC:
		r = fdatasync(o->fd);
		break;
	default:
		return -EINVAL;
	}
	return r < 0 ? -errno : (int32_t)r;
}

/* n synchronous operations; res[i] is the result of ops[i]. Returns n. */
int rs_batch(const struct rs_op *ops, uint32_t n, int32_t *res)
{
	for (uint32_t i = 0; i < n; i++) res[i] = run_one(&ops[i]);
	return (int)n;
}

static double since(int64_t origin_s, int64_t origin_ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)((int64_t)ts.tv_sec - origin_s) * 1e9 + (double)((int64_t)ts.tv_nsec - origin_ns);
}

/*
 * rs_batch with a CLOCK_MONOTONIC reading before the first op (t[0]) and after
 * each (t[i + 1]), in ns since the origin, computed as the JavaScript clock
 * computes it from process.hrtime(): one op is in flight at a time, as in
 * rs_batch, and each keeps its own start and end. Returns n.
 */
int rs_batch_timed(const struct rs_op *ops, uint32_t n, int32_t *res, double *t, int64_t origin_s, int64_t origin_ns)
{
	t[0] = since(origin_s, origin_ns);
	for (uint32_t i = 0; i < n; i++) {
		res[i] = run_one(&ops[i]);
		t[i + 1] = since(origin_s, origin_ns);
	}
	return (int)n;
}

struct rs_queue {
	int mode;
	uint32_t depth;
	struct rs_op *ops;  /* staging: written by JS, consumed by rs_queue_enter */
	uint32_t *comp_ud;  /* completions: user_data ... */
	int32_t *comp_res;  /* ... and result, written by rs_queue_enter */

	/* io_uring only */
	int ring_fd;
	uint32_t setup_flags;
	uint32_t features;
	uint32_t in_kernel; /* submitted and not yet reaped */
	void *sq_map;
	size_t sq_map_len;
	void *cq_map;
	size_t cq_map_len;
	struct io_uring_sqe *sqes;
	size_t sqes_len;
	unsigned *sq_head, *sq_tail, *sq_flags, *sq_array;
	unsigned sq_mask, sq_entries;
	unsigned *cq_head, *cq_tail;
	unsigned cq_mask, cq_entries;
	struct io_uring_cqe *cqes;
	unsigned sq_tail_local;
};

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
	return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags)
{
	return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, 0);
}

static int sys_register(int fd, unsigned opcode, void *arg, unsigned nr_args)
{
	return (int)syscall(__NR_io_uring_register, fd, opcode, arg, nr_args);
}

static void ring_unmap(struct rs_queue *q)
{
	if (q->sqes && q->sqes != MAP_FAILED) munmap(q->sqes, q->sqes_len);
	if (q->cq_map && q->cq_map != MAP_FAILED && q->cq_map != q->sq_map) munmap(q->cq_map, q->cq_map_len);
	if (q->sq_map && q->sq_map != MAP_FAILED) munmap(q->sq_map, q->sq_map_len);
	q->sqes = NULL;
	q->cq_map = NULL;
	q->sq_map = NULL;
	if (q->ring_fd >= 0) close(q->ring_fd);
	q->ring_fd = -1;
}

/* Kernel support for the three opcodes we use (READ/WRITE are 5.6+). */
static int probe_ops(int fd)
{
	size_t len = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
	struct io_uring_probe *p = calloc(1, len);
	if (!p) return -ENOMEM;
	int rc = sys_register(fd, IORING_REGISTER_PROBE, p, 256);
	if (rc < 0) {
		rc = -errno;
	} else {
		const unsigned need[] = { IORING_OP_READ, IORING_OP_WRITE, IORING_OP_FSYNC };
		rc = 0;
		for (unsigned i = 0; i < sizeof need / sizeof need[0]; i++) {
			if (need[i] > p->last_op || !(p->ops[need[i]].flags & IO_URING_OP_SUPPORTED)) rc = -EOPNOTSUPP;
		}
	}
	free(p);
	return rc;
}

static int ring_open(struct rs_queue *q, uint32_t flags)
{
	/* Newer setup flags are optimisations: drop them on kernels that refuse them. */
	const uint32_t attempts[] = {
		flags,
		flags & ~(IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER),
		flags & ~(IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
			  IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL),
	};
	struct io_uring_params p;
	int fd = -1;
	for (unsigned i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
		memset(&p, 0, sizeof p);
		p.flags = attempts[i];
		fd = sys_setup(q->depth, &p);
		if (fd >= 0 || errno != EINVAL) break;
	}
	if (fd < 0) return -errno;
	q->ring_fd = fd;
	q->setup_flags = p.flags;
	q->features = p.features;

	int rc = probe_ops(fd);
	if (rc < 0) goto fail;

	q->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	q->cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		if (q->cq_map_len > q->sq_map_len) q->sq_map_len = q->cq_map_len;
		q->cq_map_len = q->sq_map_len;
	}
	q->sq_map = mmap(NULL, q->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
	if (q->sq_map == MAP_FAILED) goto fail_errno;
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		q->cq_map = q->sq_map;
	} else {
		q->cq_map = mmap(NULL, q->cq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
		if (q->cq_map == MAP_FAILED) goto fail_errno;
	}
	q->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	q->sqes = mmap(NULL, q->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
	if (q->sqes == MAP_FAILED) goto fail_errno;

	char *sq = q->sq_map, *cq = q->cq_map;
	q->sq_head = (unsigned *)(sq + p.sq_off.head);
	q->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	q->sq_flags = (unsigned *)(sq + p.sq_off.flags);
	q->sq_array = (unsigned *)(sq + p.sq_off.array);
	q->sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
	q->sq_entries = p.sq_entries;
	q->cq_head = (unsigned *)(cq + p.cq_off.head);
	q->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	q->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
	q->cq_entries = p.cq_entries;
	q->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	/* SQE slot i is always published through array index i. */
	for (unsigned i = 0; i < q->sq_entries; i++) q->sq_array[i] = i;
	q->sq_tail_local = *q->sq_tail;
	return 0;

fail_errno:
	rc = -errno;
fail:
	ring_unmap(q);
	return rc;
}

/*
 * Opens a queue. mode 0: synchronous batch; mode 1: io_uring with the given
 * setup flags (unsupported newer flags are dropped). On failure returns NULL
 * and stores a positive errno in *err.
 */
struct rs_queue *rs_queue_open(uint32_t depth, int mode, uint32_t flags, int32_t *err)
{
	*err = 0;
	if (depth < 1 || depth > RS_MAX_DEPTH || (mode != RS_MODE_BATCH && mode != RS_MODE_URING)) {
		*err = EINVAL;
		return NULL;
	}
	struct rs_queue *q = calloc(1, sizeof *q);
	if (!q) {
		*err = ENOMEM;
		return NULL;
	}
	q->mode = mode;
	q->depth = depth;
	q->ring_fd = -1;
	q->ops = calloc(depth, sizeof *q->ops);
	q->comp_ud = calloc(depth, sizeof *q->comp_ud);
	q->comp_res = calloc(depth, sizeof *q->comp_res);
	if (!q->ops || !q->comp_ud || !q->comp_res) {
		*err = ENOMEM;
		goto fail;
	}
	if (mode == RS_MODE_URING) {
		int rc = ring_open(q, flags);
		if (rc < 0) {
			*err = -rc;
			goto fail;
		}
	}
	return q;
fail:
	free(q->ops);
	free(q->comp_ud);
	free(q->comp_res);
	free(q);
	return NULL;
}

struct rs_op *rs_queue_ops(struct rs_queue *q) { return q->ops; }
uint32_t *rs_queue_comp_ud(struct rs_queue *q) { return q->comp_ud; }
int32_t *rs_queue_comp_res(struct rs_queue *q) { return q->comp_res; }

/* out[0..5] = mode, depth, sq_entries, cq_entries, setup_flags, features */
void rs_queue_info(struct rs_queue *q, uint32_t *out)
{
	out[0] = (uint32_t)q->mode;
	out[1] = q->depth;
	out[2] = q->sq_entries;
	out[3] = q->cq_entries;
	out[4] = q->setup_flags;
	out[5] = q->features;
}

static void fill_sqe(struct io_uring_sqe *sqe, const struct rs_op *o)
{
	memset(sqe, 0, sizeof *sqe);
	sqe->fd = o->fd;
	sqe->user_data = o->user_data;
	switch (o->op) {
	case RS_OP_READ:
	case RS_OP_WRITE:
		sqe->opcode = o->op == RS_OP_READ ? IORING_OP_READ : IORING_OP_WRITE;
		sqe->addr = o->addr;
		sqe->len = o->len;
		sqe->off = o->offset;
		break;
	case RS_OP_FDATASYNC:
		sqe->opcode = IORING_OP_FSYNC;
		sqe->fsync_flags = IORING_FSYNC_DATASYNC;
		break;
	default:
		sqe->opcode = 0xff; /* the kernel completes an unknown opcode with -EINVAL */
		break;
	}
}

static uint32_t reap(struct rs_queue *q, uint32_t dst, uint32_t max)
{
	unsigned head = *q->cq_head;
	unsigned tail = __atomic_load_n(q->cq_tail, __ATOMIC_ACQUIRE);
	uint32_t got = 0;
	while (head != tail && got < max) {
		const struct io_uring_cqe *c = &q->cqes[head & q->cq_mask];
		q->comp_ud[dst + got] = (uint32_t)c->user_data;
		q->comp_res[dst + got] = c->res;
		got++;
		head++;
	}
	__atomic_store_n(q->cq_head, head, __ATOMIC_RELEASE);
	q->in_kernel -= got;
	return got;
}

static unsigned cq_ready(struct rs_queue *q)
{
	return __atomic_load_n(q->cq_tail, __ATOMIC_ACQUIRE) - *q->cq_head;
}

/*
 * Hands the first n staged operations to the kernel (or, in batch mode, runs
 * them), waits until at least wait_nr completions are ready (never more than
 * are in flight, so it cannot wait forever), and copies up to max completions
 * into comp_ud/comp_res starting at index dst. Returns the number copied, or
 * -errno if io_uring_enter itself failed.
 */
int rs_queue_enter(struct rs_queue *q, uint32_t n, uint32_t wait_nr, uint32_t dst, uint32_t max)
{
	if (n > q->depth || dst > q->depth || max > q->depth - dst) return -EINVAL;
	if (q->mode == RS_MODE_BATCH) {
		if (n > max) return -EINVAL;
		for (uint32_t i = 0; i < n; i++) {
			q->comp_ud[dst + i] = q->ops[i].user_data;
			q->comp_res[dst + i] = run_one(&q->ops[i]);
		}
		return (int)n;
	}

	unsigned head = __atomic_load_n(q->sq_head, __ATOMIC_ACQUIRE);
	if (n > q->sq_entries - (q->sq_tail_local - head)) return -EBUSY;
	for (uint32_t i = 0; i < n; i++) {
		fill_sqe(&q->sqes[q->sq_tail_local & q->sq_mask], &q->ops[i]);
		q->sq_tail_local++;
	}
	__atomic_store_n(q->sq_tail, q->sq_tail_local, __ATOMIC_RELEASE);
	q->in_kernel += n;
	if (wait_nr > q->in_kernel) wait_nr = q->in_kernel;

	for (int round = 0;; round++) {
		unsigned to_submit = q->sq_tail_local - __atomic_load_n(q->sq_head, __ATOMIC_ACQUIRE);
		unsigned ready = cq_ready(q);
		unsigned want = wait_nr > ready ? wait_nr : 0;
		unsigned flags = 0;
		if (want > 0) {
			flags = IORING_ENTER_GETEVENTS;
		} else if (ready < q->in_kernel) {
			/* Completions may be parked as task work until we enter the kernel. */
			if ((q->setup_flags & IORING_SETUP_DEFER_TASKRUN) ||
			    (__atomic_load_n(q->sq_flags, __ATOMIC_RELAXED) & IORING_SQ_TASKRUN))
				flags = IORING_ENTER_GETEVENTS;
		}
		if (to_submit == 0 && flags == 0) break;
		int rc = sys_enter(q->ring_fd, to_submit, want, flags);
		if (rc < 0) {
			if (errno == EINTR) continue;
			if (errno == EAGAIN || errno == EBUSY) {
				/* Out of kernel resources for now: reap what is there and let the caller retry. */
				break;
			}
			return -errno;
		}
		if ((unsigned)rc >= to_submit) break;
		/* A short submit leaves SQEs in the ring: go round for the rest, a bounded number of times. */
		if (round >= 64) return -EAGAIN;
	}
	return (int)reap(q, dst, max);
}

/* Waits for every operation still in flight (the kernel may write into their buffers until then), then frees the queue. */
void rs_queue_close(struct rs_queue *q)
{
	if (!q) return;
	if (q->mode == RS_MODE_URING && q->ring_fd >= 0) {
		while (q->in_kernel > 0) {
			unsigned to_submit = q->sq_tail_local - __atomic_load_n(q->sq_head, __ATOMIC_ACQUIRE);
			int rc = sys_enter(q->ring_fd, to_submit, 1, IORING_ENTER_GETEVENTS);
			if (rc < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) break;
			unsigned head = *q->cq_head;
			unsigned tail = __atomic_load_n(q->cq_tail, __ATOMIC_ACQUIRE);
			q->in_kernel -= tail - head;
			__atomic_store_n(q->cq_head, tail, __ATOMIC_RELEASE);
		}
		ring_unmap(q);
	}
	free(q->ops);
	free(q->comp_ud);
	free(q->comp_res);
	free(q);
}
