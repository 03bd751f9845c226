// How the byte cap (`buffer.max_size`) is shared between SQLite's three files: the database, its WAL
// and the WAL's shared-memory index. The cap bounds all three together, so what the WAL and the index
// may take is reserved and the rest is what the database's pages may use.
//
// The WAL grows by one frame (a page plus a 24-byte header) per page a transaction writes; a
// checkpoint after the commit that passes `checkpointPages` copies the frames back and the next
// writer starts the WAL over, so the WAL peaks near `checkpointPages` plus the largest transaction.
// A third of the reservation is the threshold and two thirds are left for that last transaction:
// an import transaction of this store (a 4096-row chunk, the chunks it evicts, their rollups and
// the index pages they touch) writes 13 to 23 pages. A compaction merge writes every byte it merges,
// so under a small cap merges are bounded too (chunks of a tier then stop growing at that size).
//
// Some pages are taken before eviction can free any: eviction rolls a chunk's windows up before it
// deletes the chunk, and each of the chunk table's five B-trees may split a page for those rows;
// rollup passes and compaction write without making room first. A 64th of the cap, at least 8
// pages, is kept for them (a store at its cap was seen 5 pages past the data budget without it).

/** Shared-memory index: one 32 KiB block per 4062 WAL frames. */
const SHM_BLOCK_BYTES = 32 * 1024;
const SHM_BLOCK_FRAMES = 4062;
/** The WAL reservation: 1/16 of the cap, at least 96 KiB (two dozen frames) and at most 8 MiB. */
const WAL_SHARE = 16;
const WAL_MIN_BYTES = 96 * 1024;
const WAL_MAX_BYTES = 8 * 1024 * 1024;
const WAL_FRAME_HEADER_BYTES = 24;
const HEADROOM_SHARE = 64;
/** Below this WAL budget, compaction starts on an empty WAL and merges at most half the budget. */
export const SMALL_WAL_BYTES = 1024 * 1024;
const HEADROOM_MIN_PAGES = 8;

export interface CapacityPlan {
  /** What the WAL may take: checkpoints and `journal_size_limit` hold it there. */
  walBudgetBytes: number;
  /** `wal_autocheckpoint`: frames after which a commit checkpoints. */
  checkpointPages: number;
  /** The shared-memory index at the WAL's largest. */
  shmBytes: number;
  /** The most a compaction merge may rewrite in one transaction: half the WAL budget under 1 MiB. */
  maxMergeBytes: number;
  /** What the database file's pages may take: the cap less the WAL, the index and the headroom. */
  dataBudgetBytes: number;
}

export function planCapacity(maxBytes: number, pageSize: number): CapacityPlan {
  const walBudgetBytes = Math.min(WAL_MAX_BYTES, Math.max(WAL_MIN_BYTES, Math.floor(maxBytes / WAL_SHARE)));
  const frameBytes = pageSize + WAL_FRAME_HEADER_BYTES;
  const checkpointPages = Math.max(4, Math.floor(walBudgetBytes / frameBytes / 3));
  // The WAL may briefly pass its budget by one transaction: count the index for twice the frames.
  const shmBytes = SHM_BLOCK_BYTES * Math.ceil((2 * walBudgetBytes) / frameBytes / SHM_BLOCK_FRAMES);
  const headroomBytes = Math.max(HEADROOM_MIN_PAGES * pageSize, Math.floor(maxBytes / HEADROOM_SHARE));
  const maxMergeBytes = walBudgetBytes < SMALL_WAL_BYTES ? Math.floor(walBudgetBytes / 2) : Infinity;
  return { walBudgetBytes, checkpointPages, shmBytes, maxMergeBytes, dataBudgetBytes: maxBytes - walBudgetBytes - shmBytes - headroomBytes };
}
