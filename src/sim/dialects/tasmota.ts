import { createHash } from 'crypto';
import type { DialectDriver, SimDevice } from '../device';
import { deviceDownload } from '../device-http';
import { HttpDownloadError } from '../http-get';
import { readEspAppDescription } from '../../core/firmware/esp-app-desc';

// A Tasmota device (ESP8266 build), as Tasmota's own code behaves; docs/tasmota.md cites the
// source (arendst/Tasmota) for each step, file:line at the commit it names:
// - LWT: connects with the will tele/{topic}/LWT "Offline" (retained), publishes "Online"
//   (retained) once connected, subscribes cmnd/{topic}/# and its group topic cmnd/tasmotas/#
//   (xdrv_02_9_mqtt.ino:927 MqttConnected, INFO1 :965); after a boot it publishes tele/{topic}/INFO1
//   {"Info1":{"Module","Version":"14.3.0(tasmota)","FallbackTopic","GroupTopic"}}.
// - OtaUrl <url>: stores it, answers stat/{topic}/RESULT {"OtaUrl":"<url>"} (support_command.ino:1038 CmndOtaUrl).
// - Upgrade 1: answers {"Upgrade":"Version <running> from <url>"}; anything but 1 or a newer
//   version gets {"Upgrade":"1 or ><running> to upgrade"} (CmndUpgrade). Then, about 3 s later,
//   up to OTA_ATTEMPTS (10 on ESP8266) downloads of GetOtaUrl() (the OtaUrl cut to TOPSZ-1 = 150
//   characters), 2 s apart; from the sixth on ".gz" is appended unless the URL holds ".gz"
//   (then that attempt is the last). An image larger than the free sketch space fails with
//   "Not Enough space" (ESP8266httpUpdate HTTP_UE_TOO_LESS_SPACE) and sets ota_loader: the next
//   attempt fetches the same file name with "-minimal" (support_tasmota.ino:1413-1454 @3fb1231, Every250mSeconds).
// - Success: stat/{topic}/UPGRADE {"Upgrade":"Successful. Restarting"}, restart into the image;
//   after all attempts failed, {"Upgrade":"Failed <error>"}.
// - The minimal build, booted with ota_loader set, fetches the stored OtaUrl again ("Propagating
//   upload", ota_state_flag 6): the second step, into the full image.
// - Status 2: stat/{topic}/STATUS2 {"StatusFWR":{"Version":...}} (CmndStatus).
// The running version is what the image says (an ESP app descriptor, or a first line
// "<title> <version>" as the demo images have): Tasmota's is compiled in.

const OTA_ATTEMPTS = 10; // tasmota.h:193, ESP8266
const TOPSZ = 151; // tasmota.h:204: GetOtaUrl copies into char ota_url[TOPSZ]

/** The version an image carries, if it says. */
export function imageVersion(image: Buffer): string | undefined {
  const desc = readEspAppDescription(image);
  if (desc?.version) return desc.version;
  const line = image.subarray(0, 128).toString('latin1').split('\n', 1)[0];
  const m = /^\S+ (\S+)$/.exec(line);
  return m ? m[1] : undefined;
}

/** support_tasmota.ino: tasmota.bin -> tasmota-minimal.bin, tasmota-DE.bin.gz -> tasmota-minimal.bin.gz. */
export function minimalUrl(url: string): string {
  const slash = url.lastIndexOf('/');
  const bch = slash < 0 ? 0 : slash;
  const dot = url.indexOf('.', bch);
  const ech = dot < 0 ? url.length : dot;
  const type = url.slice(ech);
  const dash = url.lastIndexOf('-');
  const pch = dash >= bch ? dash : ech;
  return `${url.slice(0, pch)}-minimal${type}`;
}

/** ESP8266httpUpdate's error texts for what a server can answer. */
function errorText(err: unknown): string {
  if (err instanceof HttpDownloadError && err.status !== undefined) {
    if (err.status === 404) return 'File Not Found (404)';
    if (err.status === 403) return 'Forbidden (403)';
    return 'Wrong HTTP Code';
  }
  return (err as Error).message;
}

class TooLarge extends Error {}

export function tasmota(device: SimDevice): DialectDriver {
  const cmnd = `cmnd/${device.id}/`;
  const stat = (what: string) => `stat/${device.id}/${what}`;
  const tele = (what: string) => `tele/${device.id}/${what}`;
  const fallback = `cmnd/DVES_${createHash('sha256').update(device.id).digest('hex').slice(0, 6).toUpperCase()}_fb/`;
  let otaUrl = 'http://ota.tasmota.com/tasmota/release/tasmota.bin.gz'; // OTA_URL, my_user_config.h
  let image = 'tasmota';
  let otaLoader = false; // RtcSettings.ota_loader: survives a restart
  let booted = true; // INFO1 goes out on the first connection after a boot only
  let running = false;
  let abort: AbortController | undefined;
  const delay = () => device.options.tasmotaAttemptDelayMs || Math.max(50, Math.floor(device.options.retryDelayMs / 10));

  const versionText = () => `${device.version}(${image})`;
  const result = (body: unknown) => device.publishJson(stat('RESULT'), body);
  const getOtaUrl = () => otaUrl.slice(0, TOPSZ - 1);

  const finish = (ok: boolean, error?: string) => {
    running = false;
    const text = ok ? 'Successful. Restarting' : `Failed ${error ?? ''}`;
    device.publish(stat('UPGRADE'), JSON.stringify({ Upgrade: text }));
    if (!ok) device.setState('failed', { error: text });
  };

  /** One upgrade run: the attempts of Every250mSeconds, until one flashes an image or none is left. */
  const upgrade = async () => {
    running = true;
    device.attempts++;
    await device.acquireSlot();
    let counter = OTA_ATTEMPTS;
    let lastError = '';
    otaLoader = false; // "Try requested image first"; set again by a too large image
    try {
      while (!device.isStopped) {
        counter--;
        if (counter === 0) return finish(false, lastError);
        let url = getOtaUrl();
        if (otaLoader && image !== 'minimal') url = minimalUrl(url);
        if (counter < OTA_ATTEMPTS / 2) {
          if (/\.gz/i.test(url)) counter = 1;
          else url += '.gz';
        }
        device.setState('downloading');
        abort = new AbortController();
        const controller = abort;
        const flash = device.options.tasmotaFlashSize;
        const free = flash - (device.image?.length ?? Math.floor(flash / 2));
        try {
          const got = await deviceDownload(device, url, undefined, controller.signal, (_received, total) => {
            // The updater compares Content-Length with the free sketch space before writing.
            if (flash > 0 && total > free) controller.abort(new TooLarge('Not Enough space'));
          });
          if (got.md5 && createHash('md5').update(got.data).digest('hex') !== got.md5.toLowerCase()) throw new Error('MD5 Check Failed');
          device.setState('downloaded');
          const minimal = /-minimal\.[^/]*$/.test(new URL(url).pathname);
          device.setState('updating');
          device.install(got.data, imageVersion(got.data) ?? device.version);
          image = minimal ? 'minimal' : 'tasmota';
          if (!minimal) otaLoader = false;
          finish(true);
          if (!minimal) device.setState('updated', { version: device.version });
          booted = true;
          device.later(delay(), () => device.restart());
          return;
        } catch (err) {
          if (device.isStopped) return;
          const tooLarge = controller.signal.aborted && controller.signal.reason instanceof TooLarge;
          lastError = tooLarge ? 'Not Enough space' : errorText(err);
          // Only the full build knows the minimal step (#ifndef FIRMWARE_MINIMAL).
          if (tooLarge && image !== 'minimal') otaLoader = true;
          device.emit('log', `${device.id}: OTA attempt failed: ${lastError}`);
        } finally {
          abort = undefined;
        }
        await new Promise<void>((resolve) => device.later(delay(), resolve));
      }
    } finally {
      running = false;
      device.releaseSlot();
    }
  };

  const command = (name: string, payload: string) => {
    switch (name.toLowerCase()) {
      case 'otaurl':
        if (payload.length > 0) otaUrl = payload;
        result({ OtaUrl: otaUrl });
        return;
      case 'upgrade': {
        const one = payload.trim() === '1';
        if (!one) {
          result({ Upgrade: `1 or >${device.version} to upgrade` });
          return;
        }
        result({ Upgrade: `Version ${versionText()} from ${getOtaUrl()}` });
        if (running) return;
        device.setState('notified');
        running = true;
        device.later(delay(), () => void upgrade().catch((err: Error) => device.emit('log', `${device.id}: ${err.message}`)));
        return;
      }
      case 'status':
        if (payload.trim() === '2') {
          device.publishJson(stat('STATUS2'), { StatusFWR: { Version: versionText(), BuildDateTime: '2026-11-29T00:00:00', Boot: 31, Core: '2_7_8', SDK: '2.2.2-dev(38a443e)', CpuFrequency: 80, Hardware: 'ESP8266EX', CR: '377/699' } });
        }
        return;
      default:
        result({ Command: 'Unknown' });
    }
  };

  return {
    credentials: () => ({ username: device.token }),
    will: () => ({ topic: tele('LWT'), payload: 'Offline', qos: 1, retain: true }),
    async onConnect() {
      device.publish(tele('LWT'), 'Online', 1, true);
      await device.subscribe(`${cmnd}#`, 0);
      // Group and fallback topics: a gateway refuses them (anyone could command a whole group).
      await device.subscribe(['cmnd/tasmotas/#', `${fallback}#`], 0).catch(() => undefined);
      if (booted) {
        booted = false;
        device.publishJson(tele('INFO1'), { Info1: { Module: 'Generic', Version: versionText(), FallbackTopic: fallback, GroupTopic: 'cmnd/tasmotas/' } });
        // The minimal build propagates the upload it was flashed for (ota_state_flag = 6).
        if (image === 'minimal' && otaLoader && !running) {
          running = true;
          device.later(delay(), () => void upgrade().catch((err: Error) => device.emit('log', `${device.id}: ${err.message}`)));
        }
      }
    },
    onMessage(topic, payload, retain) {
      if (!topic.startsWith(cmnd)) return;
      // A retained command is run again at every connection: Tasmota does so, and so do we.
      void retain;
      command(topic.slice(cmnd.length), payload.toString('utf8'));
    },
    onStop: () => abort?.abort(),
  };
}
