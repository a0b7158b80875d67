import type { ProgressEvent, ProgressState } from '../types';
import type { Dialect } from './dialect';
import { fill, filterOf, isObject, json, match, now, templatesOf, varsOf } from './topics';
import { own } from '../own';

// Tencent IoT Hub OTA (seed 003): update_firmware with a URL and MD5 on $ota/update/{product}/{device};
// report_version and report_progress come back on $ota/report/{product}/{device}.

const TOPICS = {
  update: '$ota/update/{product}/{device}',
  report: '$ota/report/{product}/{device}',
};

/** The seed's result codes. */
export const RESULT_CODES: Readonly<Record<string, string>> = {
  '-1': 'download timed out',
  '-2': 'file does not exist',
  '-3': 'signature expired',
  '-4': 'MD5 mismatch',
  '-5': 'firmware update failed',
};

const STATES: Readonly<Record<string, ProgressState>> = {
  downloading: 'downloading',
  burning: 'updating',
  done: 'updated',
  fail: 'failed',
};

function percentOf(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  return Number.isFinite(n) ? Math.max(0, Math.min(100, Math.round(n))) : undefined;
}

export const tencent: Dialect = {
  name: 'tencent',
  defaultTopics: TOPICS,
  reports: 'progress',

  uplinkFilters(options) {
    return [filterOf(templatesOf('tencent', TOPICS, options).report)];
  },

  notice(ctx, options) {
    const topic = fill(templatesOf('tencent', TOPICS, options).update, varsOf(ctx.device, options), `tencent notice for ${ctx.device.id}`);
    const payload = JSON.stringify({
      type: 'update_firmware',
      version: ctx.firmware.version,
      url: ctx.downloadUrl(),
      md5sum: ctx.firmware.checksums.md5,
      file_size: ctx.firmware.size,
    });
    return [{ topic, payload, qos: 1, retain: false }];
  },

  clear() {
    return []; // the update message is not retained: nothing stays on the broker
  },

  parseUplink(topic, payload, options) {
    const g = match(templatesOf('tencent', TOPICS, options).report, topic, options);
    if (!g) return { kind: 'ignored', reason: `not a Tencent report topic: ${topic}`, foreign: true };
    const device = g.device ?? (options?.device || undefined);
    if (!device) return { kind: 'invalid', error: 'the topic names no device and the node has no single device set' };
    const parsed = json(payload);
    if (!parsed.ok) return { kind: 'invalid', device, error: `report: ${parsed.error}` };
    const msg = parsed.value;
    if (!isObject(msg) || !isObject(msg.report)) return { kind: 'invalid', device, error: 'report: expected {"type", "report": {...}}' };
    const report = msg.report;
    const at = now();
    if (msg.type === 'report_version') {
      if (typeof report.version !== 'string' || report.version === '') return { kind: 'invalid', device, error: 'report_version: report.version must be a string' };
      const event: ProgressEvent = { device, dialect: 'tencent', state: 'notified', version: report.version, at };
      return { kind: 'progress', events: [event] };
    }
    if (msg.type === 'report_progress') {
      // The seed prints progress as a quoted object; devices send an object, some a JSON string.
      let progress: unknown = report.progress;
      if (typeof progress === 'string') {
        const p = json(progress);
        progress = p.ok ? p.value : undefined;
      }
      if (!isObject(progress)) return { kind: 'invalid', device, error: 'report_progress: report.progress must be an object' };
      const state = typeof progress.state === 'string' ? own(STATES, progress.state) : undefined;
      if (!state) return { kind: 'invalid', device, error: `report_progress: unknown state ${JSON.stringify(progress.state)}` };
      const event: ProgressEvent = { device, dialect: 'tencent', state, at };
      if (state === 'downloading') {
        const percent = percentOf(progress.percent);
        if (percent !== undefined) event.percent = percent;
      }
      // report.version names the version being installed: it is what the device runs only once done.
      if (state === 'updated' && typeof report.version === 'string') event.version = report.version;
      if (state === 'failed') {
        // Only a number or a string is a code: String() of an object the device made up can throw.
        const raw = progress.result_code;
        const code = typeof raw === 'number' || typeof raw === 'string' ? String(raw) : '';
        const known = own(RESULT_CODES, code);
        const given = typeof progress.result_msg === 'string' && progress.result_msg !== '' ? progress.result_msg : undefined;
        event.error = {
          code: Number.isFinite(Number(code)) && code !== '' ? Number(code) : code || 'fail',
          message: known ? (given ? `${known} (${given})` : known) : given ?? `update failed (result_code ${code || 'missing'})`,
        };
      }
      return { kind: 'progress', events: [event] };
    }
    return { kind: 'ignored', reason: `report type ${JSON.stringify(msg.type)} is not about firmware` };
  },
};
