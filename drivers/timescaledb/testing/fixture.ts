// The PostgreSQL 15 the timescaledb tests share per file: started once, a fresh database per test that
// asks for one, and cleanups run after each test (also when it failed), the server stopped at the end.
import { afterAll, afterEach, beforeAll } from 'vitest';
import { startPostgres, type PostgresServer } from '../../../test/helpers/postgres.js';

export interface PostgresFixture {
  /** The running server (after beforeAll). */
  readonly server: PostgresServer;
  /** A new empty database; returns its url. `prefix` keeps names apart between files. */
  newDatabase(): Promise<string>;
  /** Run after the current test, last registered first. */
  cleanup: (() => Promise<void> | void)[];
}

export function usePostgres(prefix: string): PostgresFixture {
  let server: PostgresServer | undefined;
  let count = 0;
  const cleanup: (() => Promise<void> | void)[] = [];
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await server?.close();
  });
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });
  return {
    get server() {
      if (!server) throw new Error('PostgreSQL is not started yet (use it inside a test)');
      return server;
    },
    async newDatabase() {
      const name = `${prefix}${++count}`;
      await this.server.query(`CREATE DATABASE ${name}`);
      return `postgres://postgres@127.0.0.1:${this.server.port}/${name}`;
    },
    cleanup,
  };
}
