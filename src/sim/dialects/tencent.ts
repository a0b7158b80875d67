import { createHash } from 'crypto';
import type { DialectDriver, SimDevice } from '../device';
import { deviceDownload } from '../device-http';
import { HttpDownloadError } from '../http-get';
import { signedCredentials } from '../../core/dialects/tencent-identity';

// A Tencent IoT Hub device (seed 003; message texts as the C SDK's ota_lib builds them):
// client id `{product}{device}` and, with a device secret, the signed username and password of
// the C SDK (core/dialects/tencent-identity.ts cites the lines); report_version on $ota/report/{product}/{device}; an update_firmware
// on $ota/update/{product}/{device} starts an HTTP download (resumed with Range), reported as
// report_progress "downloading" with the percent as a string in steps of 10, then the MD5 and
// file_size checks, then "burning" and "done", or "fail" with result_code -1..-5 as a string;
// after an update the device reports its new version, as after a restart.

interface Update {
  version: string;
  url: string;
  md5sum: string;
  fileSize?: number;
}

/** Tencent's result codes: -1 download timed out, -2 file does not exist, -3 signature expired, -4 MD5 mismatch, -5 update failed. */
function resultCodeFor(err: unknown): { code: number; msg: string } {
  if (err instanceof HttpDownloadError && err.status !== undefined) {
    if (err.status === 404) return { code: -2, msg: 'file not exist' };
    if (err.status === 403 || err.status === 401) return { code: -3, msg: 'signature expired' };
    return { code: -5, msg: err.message };
  }
  return { code: -1, msg: 'time_out' };
}

export function tencent(device: SimDevice): DialectDriver {
  const product = device.options.product;
  const reportTopic = `$ota/report/${product}/${device.id}`;
  const updateTopic = `$ota/update/${product}/${device.id}`;
  let target: Update | undefined;
  let abort: AbortController | undefined;

  const reportVersion = () => device.publishJson(reportTopic, { type: 'report_version', report: { version: device.version } }, 1);
  const progress = (state: string, version: string, extra: Record<string, string> = {}) =>
    device.publishJson(reportTopic, {
      type: 'report_progress',
      report: { progress: { state, ...extra, result_code: extra.result_code ?? '0', result_msg: extra.result_msg ?? '' }, version },
    }, 1);

  const fail = (u: Update, code: number, msg: string) => {
    progress('fail', u.version, { result_code: String(code), result_msg: msg });
    device.setState('failed', { error: `${code} ${msg}` });
  };

  const run = async (u: Update) => {
    device.attempts++;
    device.setState('notified', { version: u.version });
    await device.acquireSlot();
    if (device.isStopped) return;
    abort = new AbortController();
    device.progress(0, u.fileSize ?? 0);
    device.setState('downloading', { version: u.version });
    progress('downloading', u.version, { percent: '0' });
    let lastStep = 0;
    try {
      const { data } = await deviceDownload(device, u.url, u.fileSize, abort.signal, (received, total) => {
        const step = total > 0 ? Math.floor((received * 10) / total) * 10 : 0;
        if (step > lastStep && step < 100) {
          lastStep = step;
          progress('downloading', u.version, { percent: String(step) });
        }
      });
      if (device.isStopped) return;
      progress('downloading', u.version, { percent: '100' });
      device.setState('downloaded');
      const md5 = createHash('md5').update(data).digest('hex');
      if ((u.fileSize !== undefined && data.length !== u.fileSize) || md5 !== u.md5sum.toLowerCase()) {
        fail(u, -4, 'md5 mismatch');
        return;
      }
      device.setState('verified');
      progress('burning', u.version);
      device.setState('updating');
      device.install(data, u.version);
      progress('done', u.version);
      device.setState('updated', { version: u.version });
      reportVersion();
    } catch (err) {
      if (device.isStopped || target !== u) return; // stopped, or replaced by a newer update
      const { code, msg } = resultCodeFor(err);
      fail(u, code, msg);
    } finally {
      if (target === u) target = undefined;
      abort = undefined;
      device.releaseSlot();
      // After a failure the device reports its version again; a pending update is then re-sent.
      if (device.state === 'failed' && device.attempts < device.options.maxAttempts) {
        device.later(device.options.retryDelayMs, reportVersion);
      }
    }
  };

  const onUpdate = (body: Record<string, unknown>) => {
    const version = typeof body.version === 'string' ? body.version : undefined;
    const url = typeof body.url === 'string' ? body.url : undefined;
    const md5sum = typeof body.md5sum === 'string' ? body.md5sum : undefined;
    if (!version || !url || !md5sum) {
      device.emit('log', `${device.id}: update_firmware without version, url or md5sum`);
      return;
    }
    if (target && target.version === version) return;
    if (!target && version === device.version) {
      reportVersion(); // already running it
      return;
    }
    if (device.attempts >= device.options.maxAttempts) return;
    if (target) abort?.abort();
    const size = Number(body.file_size);
    target = { version, url, md5sum, fileSize: Number.isSafeInteger(size) && size >= 0 ? size : undefined };
    void run(target);
  };

  return {
    // The SDK signs a fresh username per connection; with its default expiry (never) one serves them all.
    credentials: () => (device.deviceSecret ? signedCredentials(device.clientId, device.deviceSecret) : { username: device.token }),
    async onConnect() {
      await device.subscribe(updateTopic, 1);
      reportVersion();
    },
    onMessage(topic, payload) {
      if (topic !== updateTopic) return;
      const body = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
      if (body && body.type === 'update_firmware') onUpdate(body);
    },
    onStop: () => abort?.abort(),
  };
}
