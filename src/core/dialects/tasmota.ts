import { OtaError, type ProgressEvent } from '../types';
import type { Dialect } from './dialect';
import { compile, fill, filterOf, isObject, json, now, templatesOf, text, varsOf } from './topics';
import { isGzip } from '../firmware/gzip';

// Tasmota (docs/tasmota.md has every fact below with the Tasmota source line it comes from).
// Commands arrive on cmnd/{topic}/{Command} (FullTopic "%prefix%/%topic%/", prefixes cmnd, stat,
// tele); the notice is two commands, OtaUrl with a short signed URL, then Upgrade 1. Tasmota
// answers on stat/{topic}/RESULT (or stat/{topic}/UPGRADE with SetOption4), reports the end of
// its attempts on stat/{topic}/UPGRADE, its version in STATUS2 and, after every boot, tele/{topic}/INFO1.

const TOPICS = {
  otaUrl: 'cmnd/{device}/OtaUrl',
  upgrade: 'cmnd/{device}/Upgrade',
  result: 'stat/{device}/RESULT',
  upgradeResult: 'stat/{device}/UPGRADE',
  status2: 'stat/{device}/STATUS2',
  info1: 'tele/{device}/INFO1',
  lwt: 'tele/{device}/LWT',
};

/**
 * GetOtaUrl copies the OtaUrl into `char ota_url[TOPSZ]` (TOPSZ 151): a longer URL is cut short
 * and the download fails. support_tasmota.ino, GetOtaUrl and the OTA case of Every250mSeconds.
 */
export const MAX_OTA_URL = 150;

/**
 * A topic matching a template exactly, with no levels in front: Tasmota's topics are never
 * namespaced, and `ota/{device}/stat/plug-1/UPGRADE` is a namespaced device's own topic, which
 * must not speak for plug-1.
 */
function exact(template: string, topic: string): Record<string, string> | undefined {
  const { re, names } = compile(template, false);
  const m = re.exec(topic);
  if (!m) return undefined;
  const groups: Record<string, string> = {};
  names.forEach((name, i) => {
    if (m[i + 1] !== undefined) groups[name] = m[i + 1];
  });
  return groups;
}

/** The image name Tasmota's minimal build reports in its version ("14.3.0(minimal)"). */
const MINIMAL = 'minimal';

/** Tasmota's version text "14.3.0(release-tasmota)" or "14.3.0.1(tasmota)": number and image name. */
export function parseVersion(value: unknown): { version: string; image?: string } | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^([^\s()]{1,64})(?:\(([^()]{0,64})\))?/.exec(value.trim());
  return m ? { version: m[1], ...(m[2] !== undefined ? { image: m[2] } : {}) } : undefined;
}

/** What an Upgrade answer says (CmndUpgrade, and the OTA case of Every250mSeconds). */
function upgradeEvent(device: string, value: unknown, at: string): ProgressEvent | { problem: string } {
  if (typeof value !== 'string') return { problem: 'Upgrade: expected a text' };
  // "Version 14.3.0(tasmota) from http://...": the command was taken, the download starts in ~3 s.
  // The version named is the one running, not a report of the new one.
  if (/^Version /.test(value)) return { device, dialect: 'tasmota', state: 'notified', at };
  // "Successful. Restarting": flashed, booting into it; INFO1 then tells the version.
  if (/^Successful/.test(value)) return { device, dialect: 'tasmota', state: 'updating', at };
  // "Failed <ESPhttpUpdate error text>": every attempt (OTA_ATTEMPTS) failed.
  const failed = /^Failed ?(.*)$/.exec(value);
  if (failed) return { device, dialect: 'tasmota', state: 'failed', error: { code: 'upgrade_failed', message: `Tasmota: upgrade failed${failed[1] ? ` (${failed[1].slice(0, 200)})` : ''}` }, at };
  // "1 or >14.3.0 to upgrade" (D_JSON_ONE_OR_GT): the payload was neither 1 nor a newer version.
  if (/^1 or >/.test(value)) return { device, dialect: 'tasmota', state: 'failed', error: { code: 'upgrade_refused', message: `Tasmota refused the Upgrade command: ${value.slice(0, 100)}` }, at };
  return { problem: `Upgrade: unknown answer ${JSON.stringify(value.slice(0, 60))}` };
}

/**
 * A version report: INFO1 after a boot, STATUS2 when asked. The minimal build is the first step
 * of a two-step upgrade (its version number is the target's): still updating, not a version.
 */
function versionEvent(device: string, value: unknown, at: string): ProgressEvent | undefined {
  const v = parseVersion(value);
  if (!v) return undefined;
  if (v.image !== undefined && v.image.split('-').includes(MINIMAL)) return { device, dialect: 'tasmota', state: 'updating', at };
  return { device, dialect: 'tasmota', state: 'notified', version: v.version, at };
}

export const tasmota: Dialect = {
  name: 'tasmota',
  defaultTopics: TOPICS,
  reports: 'progress',

  uplinkFilters(options) {
    const t = templatesOf('tasmota', TOPICS, options);
    return [t.result, t.upgradeResult, t.status2, t.info1].map(filterOf);
  },

  notice(ctx, options) {
    const t = templatesOf('tasmota', TOPICS, options);
    const vars = varsOf(ctx.device, options);
    if (!ctx.compactDownloadUrl) throw new OtaError('notice_failed', `tasmota notice for ${ctx.device.id}: the repository gives no compact download URL`);
    // The file name tells Tasmota's own retries what the image is: .bin.gz for a gzip image
    // (an ESP8266 then stops appending .gz), fw-minimal.bin for the minimal companion.
    const file = ctx.image && isGzip(ctx.image) ? 'fw.bin.gz' : 'fw.bin';
    let url: string;
    try {
      url = ctx.compactDownloadUrl(file);
    } catch (err) {
      throw new OtaError('notice_failed', `tasmota notice for ${ctx.device.id}: ${(err as Error).message}`, 'device');
    }
    if (url.length > MAX_OTA_URL) {
      throw new OtaError(
        'url_too_long',
        `tasmota notice for ${ctx.device.id}: the download URL has ${url.length} characters and Tasmota keeps ${MAX_OTA_URL} of its OtaUrl; shorten the repository's public URL or download path, or the device id`,
        'publicUrl',
      );
    }
    // The standard (ESP8266) build downloads with a plain WiFiClient: only ESP32 builds with
    // USE_WEBCLIENT_HTTPS take https (support_tasmota.ino, Every250mSeconds).
    if (url.startsWith('https:')) ctx.warn?.(`tasmota notice for ${ctx.device.id}: an https URL is fetched only by ESP32 builds with USE_WEBCLIENT_HTTPS; ESP8266 builds download over http`);
    // Never retained: Tasmota runs a retained command again at every connection (an upgrade loop).
    return [
      { topic: fill(t.otaUrl, vars, `tasmota notice for ${ctx.device.id}`), payload: url, qos: 1, retain: false },
      { topic: fill(t.upgrade, vars, `tasmota notice for ${ctx.device.id}`), payload: '1', qos: 1, retain: false },
    ];
  },

  clear() {
    return []; // commands are never retained: nothing stays on the broker
  },

  parseUplink(topic, payload, options) {
    const t = templatesOf('tasmota', TOPICS, options);
    let kind: 'result' | 'status2' | 'info1' | 'lwt' | undefined;
    let g: Record<string, string> | undefined;
    for (const [key, k] of [['result', 'result'], ['upgradeResult', 'result'], ['status2', 'status2'], ['info1', 'info1'], ['lwt', 'lwt']] as const) {
      g = exact(t[key], topic);
      if (g) {
        kind = k;
        break;
      }
    }
    if (!g || !kind) return { kind: 'ignored', reason: `not a Tasmota status topic: ${topic}`, foreign: true };
    const device = g.device ?? (options?.device || undefined);
    if (!device) return { kind: 'invalid', error: 'the topic names no device and the node has no single device set' };
    const at = now();
    // LWT: "Online" / "Offline" (retained). INFO1 follows every boot and says more.
    if (kind === 'lwt') return { kind: 'ignored', reason: `Tasmota LWT ${JSON.stringify((text(payload) ?? '').slice(0, 20))}` };
    const parsed = json(payload);
    if (!parsed.ok) return { kind: 'invalid', device, error: `${kind}: ${parsed.error}` };
    const body = parsed.value;
    if (!isObject(body)) return { kind: 'invalid', device, error: `${kind}: expected a JSON object` };
    if (kind === 'result') {
      // RESULT carries every command's answer (POWER, OtaUrl ...): only Upgrade is ours.
      if (!Object.hasOwn(body, 'Upgrade')) return { kind: 'ignored', reason: 'not an Upgrade answer' };
      const ev = upgradeEvent(device, body.Upgrade, at);
      return 'problem' in ev ? { kind: 'invalid', device, error: ev.problem } : { kind: 'progress', events: [ev] };
    }
    // INFO1 is {"Info1":{...}} from Tasmota 12 on, the object itself before; STATUS2 is {"StatusFWR":{...}}.
    const inner = kind === 'status2' ? body.StatusFWR : isObject(body.Info1) ? body.Info1 : body;
    if (!isObject(inner)) return { kind: 'invalid', device, error: `${kind}: no ${kind === 'status2' ? 'StatusFWR' : 'Info1'} object` };
    const ev = versionEvent(device, inner.Version, at);
    return ev ? { kind: 'progress', events: [ev] } : { kind: 'invalid', device, error: `${kind}: no Version text` };
  },
};
