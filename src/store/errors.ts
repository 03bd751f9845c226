// Errors the store raises to its callers. Each names what happened and what the user can do.
import { SinkRefusal } from '../core/component.js';

/** The store file cannot be opened or read. Carries the file and advice; the CLI prints it without a stack. */
export class StoreOpenError extends Error {
  constructor(
    readonly file: string,
    reason: string,
    readonly advice: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${reason}. ${advice}`, options);
    this.name = 'StoreOpenError';
  }
}

/** `buffer.when_full: drop_newest` refused these points: the store is at its cap. */
export class StoreFullError extends SinkRefusal {
  constructor(readonly points: number) {
    super('full', `store is full (buffer.max_size reached, when_full: drop_newest): ${points} points refused`);
    this.name = 'StoreFullError';
  }
}

/** The store was closed while points were still waiting for their commit. */
export class StoreClosedError extends SinkRefusal {
  constructor() {
    super('closed', 'store is closed');
    this.name = 'StoreClosedError';
  }
}
