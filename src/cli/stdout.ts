// Buffered writing to stdout that honours backpressure, so exporting a large store into a slow pipe
// never buffers the whole export in memory.
import type { Writable } from 'node:stream';

export class BufferedWriter {
  private parts: string[] = [];
  private size = 0;

  constructor(
    private readonly out: Writable = process.stdout,
    private readonly flushBytes = 64 * 1024,
  ) {}

  async write(text: string): Promise<void> {
    this.parts.push(text);
    this.size += text.length;
    if (this.size >= this.flushBytes) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.parts.length === 0) return;
    const chunk = this.parts.join('');
    this.parts = [];
    this.size = 0;
    if (!this.out.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          this.out.off('error', onError);
          resolve();
        };
        const onError = (err: Error) => {
          this.out.off('drain', onDrain);
          reject(err);
        };
        this.out.once('drain', onDrain);
        this.out.once('error', onError);
      });
    }
  }
}
