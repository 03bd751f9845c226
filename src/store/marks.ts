// Commit marks (see CommitMark in src/core/component.ts): keyed records an input has written by the
// group commit in the same transaction as its points, so that after a crash "these points are stored"
// and "this mark is set" are never out of step. The table holds a few rows per input (the MQTT input
// keeps one per message whose acknowledgement the broker has not yet confirmed), never history.
import type Database from 'better-sqlite3';
import type { CommitMark } from '../core/component.js';

const SCHEMA = `CREATE TABLE IF NOT EXISTS commit_marks(scope TEXT NOT NULL, key INTEGER NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY(scope, key)) WITHOUT ROWID;`;

export class CommitMarkTable {
  private upsert: Database.Statement | undefined;
  private remove: Database.Statement | undefined;

  constructor(
    private readonly db: Database.Database,
    private readonly readonly: boolean,
  ) {}

  /** Applies marks in order. Call inside the write transaction that holds their points. */
  apply(marks: readonly CommitMark[]): void {
    if (marks.length === 0) return;
    if (this.readonly) throw new Error('commit marks: the store is open read-only');
    if (!this.upsert || !this.remove) {
      this.db.exec(SCHEMA);
      this.upsert = this.db.prepare('INSERT INTO commit_marks(scope, key, value) VALUES (?, ?, ?) ON CONFLICT(scope, key) DO UPDATE SET value = excluded.value');
      this.remove = this.db.prepare('DELETE FROM commit_marks WHERE scope = ? AND key = ?');
    }
    for (const m of marks) {
      if (m.value === null) this.remove.run(m.scope, m.key);
      else this.upsert.run(m.scope, m.key, m.value);
    }
  }

  /** The marks of `scope` as committed; empty for a store that never had any. */
  read(scope: string): Map<number, string> {
    const exists = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'commit_marks'").get();
    if (exists === undefined) return new Map();
    const rows = this.db.prepare('SELECT key, value FROM commit_marks WHERE scope = ?').all(scope) as { key: number; value: string }[];
    return new Map(rows.map((r) => [r.key, r.value]));
  }
}

/** The marks of a group commit's writers, in the order they wrote. */
export function marksOf(waiters: readonly { marks?: readonly CommitMark[] }[]): CommitMark[] {
  const out: CommitMark[] = [];
  for (const w of waiters) if (w.marks) for (const m of w.marks) out.push(m);
  return out;
}
