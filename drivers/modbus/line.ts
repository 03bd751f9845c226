// The byte pipes a Modbus transport talks over: a TCP socket or a serial port, opened the same way.
// Framing (MBAP or RTU) sits above and does not care which: Modbus TCP is MBAP over a socket, RTU is
// RTU frames over a serial port, and RTU over TCP (a serial-to-Ethernet converter) is RTU frames over
// a socket, with the socket handling of Modbus TCP and the line discipline of RTU.
import { Socket } from 'node:net';
import { SerialPort } from 'serialport';

export interface LineHandlers {
  onData(chunk: Buffer): void;
  /** The link went away after `ready` resolved (peer closed, cable pulled, adapter unplugged). */
  onClose(err: Error | undefined): void;
}

export interface ByteLine {
  /** Resolves once the link carries bytes; rejects when this attempt failed (the line is then released). */
  readonly ready: Promise<void>;
  write(bytes: Buffer): void;
  /** Drops a link that looks dead; onClose reports it as lost. */
  drop(err: Error): void;
  /** Releases the socket or port, also while still connecting; resolves once released. */
  close(): Promise<void>;
}

export type LineOpener = (handlers: LineHandlers) => ByteLine;

export interface SocketEndpoint {
  host: string;
  port: number;
  connectTimeoutMs: number;
}

/**
 * Timeouts in a row, with nothing at all received, after which the socket is presumed half-open (a
 * peer that vanished without a FIN or RST: power cut, cable pulled) and reopened. A unit that is silent
 * behind a healthy gateway resets nothing as long as any other unit answers.
 */
export const SILENT_TIMEOUTS_BEFORE_RECONNECT = 3;

/** How often TCP keepalive probes an idle connection, to find a peer that vanished between polls. */
const KEEPALIVE_MS = 10_000;

/** A TCP socket: connect with a timeout, no Nagle delay (requests are small and wait for answers), keepalive. */
export function socketLine(endpoint: SocketEndpoint): LineOpener {
  return (handlers) => {
    const socket = new Socket();
    let up = false;
    let dropped: Error | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => socket.destroy(new Error(`connect timeout after ${endpoint.connectTimeoutMs}ms`)), endpoint.connectTimeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('close', () => {
        clearTimeout(timer);
        if (up) handlers.onClose(dropped ?? new Error('connection closed by peer'));
        else reject(new Error('connection closed while connecting'));
      });
      socket.connect({ host: endpoint.host, port: endpoint.port }, () => {
        clearTimeout(timer);
        up = true;
        socket.removeAllListeners('error');
        socket.on('error', () => undefined); // 'close' follows and carries the loss
        socket.setNoDelay(true);
        socket.setKeepAlive(true, KEEPALIVE_MS);
        socket.on('data', (chunk: Buffer) => handlers.onData(chunk));
        resolve();
      });
    });
    return {
      ready,
      write: (bytes) => {
        socket.write(bytes);
      },
      drop: (err) => {
        dropped = err;
        socket.destroy();
      },
      close: () => {
        up = false; // a close we asked for is not a loss
        if (socket.destroyed && socket.closed) return Promise.resolve();
        return new Promise((resolve) => {
          socket.once('close', () => resolve());
          socket.destroy();
        });
      },
    };
  };
}

export interface SerialSettings {
  baudRate: number;
  parity: 'none' | 'even' | 'odd';
  dataBits: 7 | 8;
  stopBits: 1 | 2;
}

/** A serial port (RS-485/RS-232 adapter). An unplugged USB adapter closes the port: that is a loss. */
export function serialLine(path: string, settings: SerialSettings): LineOpener {
  return (handlers) => {
    const port = new SerialPort({ path, ...settings, autoOpen: false });
    let closing = false;
    let dropped: Error | undefined;
    port.on('error', () => undefined); // reported through open's callback or 'close'
    const ready = new Promise<void>((resolve, reject) => {
      port.open((err) => {
        if (err) {
          reject(err);
          return;
        }
        if (closing) {
          // Closed while opening: let go of the port we just got.
          port.close(() => undefined);
          reject(new Error('serial port closed while opening'));
          return;
        }
        port.on('data', (chunk: Buffer) => handlers.onData(chunk));
        port.on('close', (closeErr: Error | null) => {
          if (!closing) handlers.onClose(dropped ?? closeErr ?? new Error('serial port closed'));
        });
        resolve();
      });
    });
    return {
      ready,
      write: (bytes) => {
        port.write(bytes);
      },
      drop: (err) => {
        dropped = err;
        if (port.isOpen) port.close(() => undefined);
      },
      close: () => {
        closing = true;
        if (!port.isOpen) return Promise.resolve();
        return new Promise((resolve) => port.close(() => resolve()));
      },
    };
  };
}
