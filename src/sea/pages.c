// The two system calls the single binary needs that Node 20 does not offer:
// - madvise(MADV_DONTNEED) on the read-only segments of its own executable, so the pages that only
//   start-up touched stop counting in its RSS (src/sea/pages.ts says when and why);
// - execve of itself, so `sluice run` starts again with its V8 heap limits in the same process (same
//   pid, no parent left waiting: src/cli/limits.ts). Node has process.execve only from 23.11.
// Written by hand: no library on npm does only this, and calls that unmap a process's own code or
// replace its image are small enough to read in full here.
//
// Built by build/bin.mjs with the target's C compiler against Node's headers; Node-API only, so one
// source serves x64 and arm64.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdlib.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>
#include <node_api.h>

#define MAX_SEGMENTS 32

struct range {
  uintptr_t start;
  uintptr_t end;
};

struct segments {
  struct range readonly[MAX_SEGMENTS];
  size_t readonly_count;
  struct range writable[MAX_SEGMENTS];
  size_t writable_count;
};

// The main program is the first object dl_iterate_phdr reports. Its loadable segments, as the process
// sees them (under qemu-user too, where /proc/self/maps would show the emulator's addresses).
static int collect(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  struct segments *seg = data;
  for (size_t i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || ph->p_memsz == 0) continue;
    struct range r = {info->dlpi_addr + ph->p_vaddr, info->dlpi_addr + ph->p_vaddr + ph->p_memsz};
    if (ph->p_flags & PF_W) {
      if (seg->writable_count < MAX_SEGMENTS) seg->writable[seg->writable_count++] = r;
    } else if (seg->readonly_count < MAX_SEGMENTS) {
      seg->readonly[seg->readonly_count++] = r;
    }
  }
  return 1;  // the main program only
}

static int overlaps(const struct segments *seg, uintptr_t start, uintptr_t end) {
  for (size_t i = 0; i < seg->writable_count; i++) {
    if (start < seg->writable[i].end && seg->writable[i].start < end) return 1;
  }
  return 0;
}

// releaseExecutablePages(): { segments: number, bytes: number, errno: number }
// Only segments that are never writable: their pages are always the file's bytes, so dropping them
// loses nothing and the next access maps the page again from the page cache. Each range is shrunk to
// whole pages that no writable segment shares (a writable segment's pages can hold copied-on-write
// data, relocations, that MADV_DONTNEED on a private mapping would throw away).
static napi_value ReleaseExecutablePages(napi_env env, napi_callback_info info) {
  (void)info;
  struct segments seg = {0};
  dl_iterate_phdr(collect, &seg);
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uint32_t count = 0;
  double bytes = 0;
  int first_errno = 0;
  for (size_t i = 0; i < seg.readonly_count; i++) {
    uintptr_t start = (seg.readonly[i].start + page - 1) & ~(page - 1);
    uintptr_t end = seg.readonly[i].end & ~(page - 1);
    while (start < end && overlaps(&seg, start, start + page)) start += page;
    while (end > start && overlaps(&seg, end - page, end)) end -= page;
    if (start >= end || overlaps(&seg, start, end)) continue;
    if (madvise((void *)start, end - start, MADV_DONTNEED) == 0) {
      count++;
      bytes += (double)(end - start);
    } else if (first_errno == 0) {
      first_errno = errno;
    }
  }
  napi_value result = NULL;
  napi_value value = NULL;
  if (napi_create_object(env, &result) != napi_ok) return NULL;
  napi_create_uint32(env, count, &value);
  napi_set_named_property(env, result, "segments", value);
  napi_create_double(env, bytes, &value);
  napi_set_named_property(env, result, "bytes", value);
  napi_create_int32(env, first_errno, &value);
  napi_set_named_property(env, result, "errno", value);
  return result;
}

// A JS string as a malloc'ed C string (NULL when it is not a string or memory runs out).
static char *c_string(napi_env env, napi_value value) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return NULL;
  char *s = malloc(length + 1);
  if (s == NULL) return NULL;
  if (napi_get_value_string_utf8(env, value, s, length + 1, &length) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

// A JS array of strings as a NULL-terminated, malloc'ed vector (NULL on any failure).
static char **c_strings(napi_env env, napi_value array) {
  uint32_t n = 0;
  if (napi_get_array_length(env, array, &n) != napi_ok) return NULL;
  char **v = calloc((size_t)n + 1, sizeof(char *));
  if (v == NULL) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value item = NULL;
    if (napi_get_element(env, array, i, &item) != napi_ok || (v[i] = c_string(env, item)) == NULL) {
      for (uint32_t j = 0; j < i; j++) free(v[j]);
      free(v);
      return NULL;
    }
  }
  return v;
}

static void free_strings(char **v) {
  if (v == NULL) return;
  for (char **p = v; *p != NULL; p++) free(*p);
  free(v);
}

// execve(path: string, argv: string[], env: string[]): number
// Replaces the process with `path`; returns only when the kernel refused, with errno (an arm64 binary
// under qemu-user without binfmt_misc, for one). First, two things Node set that execve would keep:
// - close-on-exec on stdin, stdout and stderr (Node marks them at start-up): the new image would find
//   them closed, put /dev/null there, and the agent's log would go nowhere;
// - the signal mask: a thread's blocked signals survive execve, and the new Node must see SIGTERM.
static napi_value Execve(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3] = {NULL, NULL, NULL};
  int err = EINVAL;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) == napi_ok && argc == 3) {
    char *path = c_string(env, args[0]);
    char **argv = c_strings(env, args[1]);
    char **envp = c_strings(env, args[2]);
    if (path != NULL && argv != NULL && envp != NULL) {
      for (int fd = 0; fd <= 2; fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags != -1) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
      }
      sigset_t none;
      sigemptyset(&none);
      pthread_sigmask(SIG_SETMASK, &none, NULL);
      execve(path, argv, envp);
      err = errno;
    } else {
      err = ENOMEM;
    }
    free(path);
    free_strings(argv);
    free_strings(envp);
  }
  napi_value result = NULL;
  napi_create_int32(env, err, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn = NULL;
  if (napi_create_function(env, "releaseExecutablePages", NAPI_AUTO_LENGTH, ReleaseExecutablePages, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "releaseExecutablePages", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "execve", NAPI_AUTO_LENGTH, Execve, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "execve", fn) != napi_ok) return NULL;
  return exports;
}
