// The simulator input: realistic sensor series so the agent runs, stores and answers questions on a
// machine with no sensors. Each series is one `sensor` tag with a slow temperature random walk with
// noise at two fixed decimals, a humidity at one decimal, a monotonic counter and a rare alarm flag.
import type { Input, InputContext, InputStats } from '../../src/core/component.js';
import type { Point } from '../../src/core/point.js';

export interface SimulatorSettings {
  series: number;
  intervalMs: number;
  measurement: string;
  tags: Record<string, string>;
}

/** Small seeded PRNG (mulberry32): reproducible per input id, no dependency. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

interface SensorState {
  tags: Record<string, string>;
  temperature: number;
  humidity: number;
  counter: bigint;
}

export class SimulatorInput implements Input {
  private timer: NodeJS.Timeout | undefined;
  private readonly random: () => number;
  private readonly sensors: SensorState[];
  private readonly counters: InputStats = { points: 0, errors: 0, lastPointMs: null, refused: 0 };

  constructor(
    private readonly settings: SimulatorSettings,
    private readonly ctx: InputContext,
  ) {
    this.random = prng(hash(ctx.id));
    this.sensors = Array.from({ length: settings.series }, (_, i) => ({
      tags: { ...settings.tags, sensor: `s${String(i).padStart(3, '0')}` },
      temperature: 18 + this.random() * 8,
      humidity: 40 + this.random() * 20,
      counter: 0n,
    }));
  }

  start(): Promise<void> {
    // Ticks are aligned to the interval on the wall clock, as a polled plant would be. The next slot
    // follows the last reading, not the time the timer ran, so a tick that ran late (a busy event loop,
    // a slow first write) is still taken at its slot and the series has no hole one interval wide.
    const intervalMs = this.settings.intervalMs;
    let lastMs = Date.now();
    const schedule = () => {
      const now = Date.now();
      let next = Math.floor(lastMs / intervalMs) * intervalMs + intervalMs;
      // The clock jumped (a suspended board, an NTP step either way): start again from the clock.
      if (next < now - 10 * intervalMs || next > now + 2 * intervalMs) next = Math.floor(now / intervalMs) * intervalMs + intervalMs;
      this.timer = setTimeout(() => {
        lastMs = next;
        this.tick(next);
        schedule();
      }, Math.max(0, next - now));
    };
    this.tick(lastMs);
    schedule();
    return Promise.resolve();
  }

  stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    return Promise.resolve();
  }

  stats(): InputStats {
    return { ...this.counters };
  }

  /** One reading of every sensor at `timeMs`. */
  tick(timeMs: number): void {
    const points: Point[] = [];
    for (const s of this.sensors) {
      s.temperature += (this.random() - 0.5) * 0.05 + (21 - s.temperature) * 0.001;
      s.humidity = Math.min(100, Math.max(0, s.humidity + (this.random() - 0.5) * 0.2));
      s.counter += BigInt(1 + Math.floor(this.random() * 3));
      const noise = (this.random() - 0.5) * 0.04;
      points.push({
        measurement: this.settings.measurement,
        tags: s.tags,
        fields: {
          temperature: Math.round((s.temperature + noise) * 100) / 100,
          humidity: Math.round(s.humidity * 10) / 10,
          counter: s.counter,
          alarm: this.random() < 0.001,
        },
        timeUs: timeMs * 1000,
      });
    }
    this.counters.points += points.length;
    this.counters.lastPointMs = timeMs;
    this.ctx.sink.write(points).catch((err: unknown) => {
      // Polled data cannot be re-asked for: count the refusal, the ring already counted the drop.
      this.counters.refused += points.length;
      this.ctx.log.debug({ err }, 'points refused by the store');
    });
  }
}
