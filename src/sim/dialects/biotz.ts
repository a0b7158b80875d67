import { createHash } from 'crypto';
import type { DialectDriver, SimDevice } from '../device';
import { deviceDownload } from '../device-http';

// A Biotz device (seed 000): subscribes to biotz/1/0/{customer}/{device}/subscribe/firmware/update
// (never publishes there), gets the retained {"firmware-name","download-url"} notice on every
// subscribe, ignores it when the name is the one it runs, else downloads the URL (resumed with
// Range), checks it and "installs" it. The protocol has no progress report: the server sees the
// URL being fetched. "It may perform some checks": when the server's ETag is a SHA-256 (ours is),
// the device compares it. After a failure it subscribes again to get the notice anew.

const SHA256_ETAG = /^(?:W\/)?"?([0-9a-f]{64})"?$/i;

export function biotz(device: SimDevice): DialectDriver {
  const topic = `biotz/1/0/${device.options.customer}/${device.id}/subscribe/firmware/update`;
  let downloading: string | undefined;
  let abort: AbortController | undefined;

  const resubscribe = async () => {
    await device.unsubscribe(topic);
    await device.subscribe(topic, 1);
  };

  const run = async (name: string, url: string) => {
    device.attempts++;
    device.setState('notified', { version: name });
    await device.acquireSlot();
    if (device.isStopped) return;
    abort = new AbortController();
    downloading = name;
    device.progress(0, 0);
    device.setState('downloading', { version: name });
    try {
      const { data, etag } = await deviceDownload(device, url, undefined, abort.signal);
      if (device.isStopped || downloading !== name) return;
      device.setState('downloaded');
      const m = etag ? SHA256_ETAG.exec(etag) : null;
      if (m && createHash('sha256').update(data).digest('hex') !== m[1].toLowerCase()) {
        device.setState('failed', { error: 'sha256 mismatch' });
      } else {
        if (m) device.setState('verified');
        device.setState('updating');
        device.install(data, name);
        device.setState('updated', { version: name });
      }
    } catch (err) {
      if (device.isStopped || downloading !== name) return;
      device.setState('failed', { error: (err as Error).message });
    } finally {
      if (downloading === name) downloading = undefined;
      abort = undefined;
      device.releaseSlot();
      if (device.state === 'failed' && device.attempts < device.options.maxAttempts) {
        device.later(device.options.retryDelayMs, () => void resubscribe().catch(() => undefined));
      }
    }
  };

  return {
    credentials: () => ({ username: device.token }),
    async onConnect() {
      await device.subscribe(topic, 1);
    },
    onMessage(t, payload) {
      if (t !== topic || payload.length === 0) return; // an empty retained message clears the notice
      const body = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
      const name = body['firmware-name'];
      const url = body['download-url'];
      if (typeof name !== 'string' || typeof url !== 'string') {
        device.emit('log', `${device.id}: notice without firmware-name or download-url`);
        return;
      }
      if (name === downloading || device.state === 'notified') return;
      if (!downloading && name === device.version) return; // running it already: nothing to do
      if (device.attempts >= device.options.maxAttempts) return;
      if (downloading) abort?.abort();
      void run(name, url);
    },
    onStop: () => abort?.abort(),
  };
}
