import { SimDevice } from './device';
import { httpDownload, type HttpDownloadResult } from './http-get';

// The HTTP download of the URL dialects (Tencent, Biotz), with the device's injected faults:
// drop = cut the connection (the download resumes with Range), stall = stop reading for a while,
// corrupt = flip the first byte of 4 KiB block N.

export const HTTP_BLOCK = 4096;

export function deviceDownload(
  device: SimDevice,
  url: string,
  expectedSize: number | undefined,
  signal: AbortSignal,
  onProgress?: (received: number, total: number) => void,
): Promise<HttpDownloadResult> {
  const block = device.options.faults.corruptChunk ?? (device.broken ? 0 : undefined);
  return httpDownload({
    url,
    signal,
    idleTimeoutMs: device.options.chunkTimeoutMs,
    deadlineMs: device.options.downloadTimeoutMs,
    resumeDelayMs: Math.min(200, device.options.reconnectMs),
    hooks: {
      onData(received, total) {
        const size = total || expectedSize || 0;
        device.progress(received, size);
        onProgress?.(received, size);
        if (device.dropDue(received, size)) {
          device.emit('log', `${device.id}: cutting the download at ${received} bytes (fault injection)`);
          return 'drop';
        }
        return device.stallDue(received, size);
      },
      transform(piece, offset) {
        if (block === undefined) return piece;
        const at = block * HTTP_BLOCK;
        if (at < offset || at >= offset + piece.length || !device.corruptDue(block)) return piece;
        return SimDevice.flipByte(piece, at - offset);
      },
    },
  });
}
