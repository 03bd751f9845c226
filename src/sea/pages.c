// The one system call the single binary needs that Node does not offer: madvise(MADV_DONTNEED) on the
// read-only segments of its own executable, so the pages that only start-up touched stop counting in
// its RSS (src/sea/pages.ts says when and why). Written by hand: no library on npm does only this, and
// a call that unmaps a process's own code is small enough to read in full here.
//
// Built by build/bin.mjs with the target's C compiler against Node's headers; Node-API only, so one
// source serves x64 and arm64.
#define _GNU_SOURCE
#include <errno.h>
#include <link.h>
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

NAPI_MODULE_INIT() {
  napi_value fn = NULL;
  if (napi_create_function(env, "releaseExecutablePages", NAPI_AUTO_LENGTH, ReleaseExecutablePages, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "releaseExecutablePages", fn) != napi_ok) return NULL;
  return exports;
}
