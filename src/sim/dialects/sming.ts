import { SimDevice as Device, type DialectDriver, type SimDevice } from '../device';
import { decodePatch, shouldFlash } from '../sming-decoder';

// A Sming device with OtaUpgradeMqtt (seed 001, and Sming's Upgrade sample): subscribes to
// {prefix}a/{app}/u/{major}.{minor}; the retained message is the patch version (varint by default,
// or one byte) followed by the whole image; it flashes, then restarts (here: reconnects), which
// subscribes again and gets the retained message again. With the `sming` decoder this loops on an
// equal patch until someone clears the retained message; the loop is bounded by maxAttempts
// flashes of one patch. No checksum and no progress report exist in this protocol.

export function sming(device: SimDevice): DialectDriver {
  const [major = '0', minor = '0', patchText = '0'] = device.version.split('.');
  const topic = `${device.options.smingPrefix}a/${device.options.app}/u/${major}.${minor}`;
  let running = Number.parseInt(patchText, 10) || 0;
  const flashesOf = new Map<number, number>();

  const flash = (image: Buffer, patch: number) => {
    device.setState('downloaded');
    device.setState('updating');
    device.install(image, `${major}.${minor}.${patch}`);
    running = patch;
    device.setState('updated', { version: device.version });
    // The device restarts after switching ROMs: a new connection, a new subscribe.
    device.dropConnection();
  };

  return {
    credentials: () => (device.token !== device.id ? { username: device.token } : {}),
    async onConnect() {
      await device.subscribe(topic, 1);
    },
    onMessage(t, payload) {
      if (t !== topic || payload.length === 0) return;
      const header = decodePatch(payload, device.options.smingVarint, device.options.smingDecoder);
      if (!header) {
        device.emit('log', `${device.id}: invalid patch version`);
        return;
      }
      if (!shouldFlash(header.patch, running, device.options.smingDecoder)) return;
      const flashes = flashesOf.get(header.patch) ?? 0;
      if (flashes >= device.options.maxAttempts) return; // bounded: a real device would loop forever
      device.attempts++;
      let image = payload.subarray(header.offset);
      device.progress(0, image.length);
      device.setState('downloading', { version: `${major}.${minor}.${header.patch}` });
      device.progress(image.length, image.length);
      if (device.takeFault('drop')) {
        // Power lost while writing the ROM: nothing switched; after the restart the retained message comes again.
        device.dropConnection();
        return;
      }
      if (device.takeFault('corrupt')) image = Device.flipByte(image); // nothing in the protocol can notice
      flashesOf.set(header.patch, flashes + 1);
      const stall = device.takeFault('stall') ? device.options.faults.stallMs ?? 0 : 0;
      if (stall > 0) device.later(stall, () => flash(image, header.patch));
      else flash(image, header.patch);
    },
  };
}
