import { SimDevice, type DialectDriver } from '../device';
import { ChunkLoop } from '../chunk-loop';
import { verifyChecksum } from '../tb-checksum';

// A ThingsBoard MQTT device (seed 004, and the ThingsBoard Python SDK's firmware client):
// token as username; current_fw_title/current_fw_version telemetry; shared fw_* attributes
// requested on connect and pushed on change; chunks requested on v2/fw/request/{rid}/chunk/{n}
// with the chunk size as the payload; fw_state telemetry DOWNLOADING, DOWNLOADED, VERIFIED,
// UPDATING, UPDATED, or FAILED with fw_error.

const ATTRS = 'v1/devices/me/attributes';
const ATTR_RESPONSE = 'v1/devices/me/attributes/response/';
const ATTR_REQUEST = 'v1/devices/me/attributes/request/';
const TELEMETRY = 'v1/devices/me/telemetry';
const CHUNK_RESPONSES = 'v2/fw/response/+/chunk/+';
// The stock Python SDK (thingsboard-python-client-sdk tb_device_mqtt.py: paho.Client(protocol=5)
// line 492, get_firmware_update() subscribes "v2/fw/response/+" line 651) connects with MQTT 5
// and subscribes to a filter that never matches the replies on a standard broker: ThingsBoard's
// transport, and the ota-gateway, deliver them anyway. protocolVersion 5 models that device.
const SDK_CHUNK_RESPONSES = 'v2/fw/response/+';
const CHUNK_RESPONSE_RE = /^v2\/fw\/response\/(\d+)\/chunk\/(\d+)$/;
export const SHARED_KEYS = 'fw_title,fw_version,fw_size,fw_checksum,fw_checksum_algorithm,fw_tag';

interface Target {
  title: string;
  version: string;
  size: number;
  checksum: unknown;
  algorithm: unknown;
  requestId: number;
}

type Shared = Record<string, unknown>;

export function thingsboard(device: SimDevice): DialectDriver {
  let shared: Shared = {};
  let attrRequestId = 0;
  let fwRequestId = 0;
  let target: Target | undefined;
  let pieces: Buffer[] = [];
  let received = 0;
  let fwState: string | undefined;
  const chunkSize = device.options.chunkSize;
  const chunkFilter = device.options.protocolVersion === 5 ? SDK_CHUNK_RESPONSES : CHUNK_RESPONSES;

  const telemetry = (extra: Record<string, unknown> = {}) => {
    const body: Record<string, unknown> = { current_fw_title: device.title, current_fw_version: device.version };
    if (fwState) body.fw_state = fwState;
    device.publishJson(TELEMETRY, { ...body, ...extra }, 1);
  };
  const report = (state: string, extra: Record<string, unknown> = {}) => {
    fwState = state;
    telemetry(extra);
  };
  const requestAttributes = () => {
    attrRequestId++;
    device.publishJson(ATTR_REQUEST + attrRequestId, { sharedKeys: SHARED_KEYS }, 1);
  };

  const loop = new ChunkLoop(device, {
    request: (n) => {
      if (target) device.publish(`v2/fw/request/${target.requestId}/chunk/${n}`, String(chunkSize), 1);
    },
    fail: (reason) => fail(reason),
    // Bounded: the image's chunk count plus one zero-length answer, with room for a server that
    // answers with shorter chunks than asked.
    maxChunks: 1_000_000,
  });

  const fail = (reason: string) => {
    loop.stop();
    target = undefined;
    report('FAILED', { fw_error: reason });
    device.setState('failed', { error: reason });
    device.releaseSlot();
    // The SDK asks for the attributes again after a failure: the answer is the new notice.
    if (device.attempts < device.options.maxAttempts) device.later(device.options.retryDelayMs, requestAttributes);
  };

  const begin = async (t: Omit<Target, 'requestId'>) => {
    device.attempts++;
    device.setState('notified', { version: t.version });
    await device.acquireSlot();
    if (device.isStopped) return;
    fwRequestId++;
    const requestId = fwRequestId;
    target = { ...t, requestId };
    pieces = [];
    received = 0;
    device.progress(0, t.size);
    report('DOWNLOADING');
    device.setState('downloading', { version: t.version });
    try {
      await device.subscribe(chunkFilter);
    } catch {
      // The connection dropped before the SUBACK: onConnect subscribes again and starts the loop.
    }
    // Not when onConnect already started it after a reconnect, nor for a download replaced since.
    if (target?.requestId === requestId && !loop.running) loop.start();
  };

  const finish = () => {
    const t = target;
    if (!t) return;
    loop.stop();
    const image = Buffer.concat(pieces);
    report('DOWNLOADED');
    device.setState('downloaded');
    if (image.length !== t.size) {
      fail(`size mismatch: got ${image.length} bytes, fw_size is ${t.size}`);
      return;
    }
    if (!verifyChecksum(image, t.algorithm, t.checksum)) {
      fail('Checksum verification failed');
      return;
    }
    report('VERIFIED');
    device.setState('verified');
    report('UPDATING');
    device.setState('updating');
    device.title = t.title;
    device.install(image, t.version);
    target = undefined;
    report('UPDATED');
    device.setState('updated', { version: t.version });
    device.releaseSlot();
  };

  const onInfo = (info: Shared) => {
    shared = { ...shared, ...info };
    const title = shared.fw_title;
    const version = shared.fw_version;
    // As the SDK: a notice counts when fw_title or fw_version is present and differs.
    const differs =
      (version !== undefined && version !== device.version) || (title !== undefined && title !== device.title);
    if (!differs) return;
    if (target && target.title === title && target.version === version) return; // already on it
    if (device.state === 'notified') return; // waiting for a slot for it
    const size = Number(shared.fw_size);
    if (!Number.isSafeInteger(size) || size < 0) {
      device.emit('log', `${device.id}: notice without a valid fw_size`);
      return;
    }
    if (device.attempts >= device.options.maxAttempts) return;
    if (target) {
      loop.stop(); // a newer assignment replaces the download in flight
      device.releaseSlot();
    }
    void begin({ title: String(title ?? device.title), version: String(version ?? device.version), size, checksum: shared.fw_checksum, algorithm: shared.fw_checksum_algorithm });
  };

  const onChunk = (requestId: number, index: number, payload: Buffer) => {
    if (!target || requestId !== target.requestId || index !== loop.next || !loop.running) return;
    let piece = payload;
    if (device.corruptDue(index)) piece = SimDevice.flipByte(piece);
    if (piece.length === 0) {
      finish();
      return;
    }
    pieces.push(piece);
    received += piece.length;
    device.progress(received, target.size);
    if (received === target.size) finish();
    else if (received > target.size) fail('Firmware data size exceeded the target firmware length');
    else loop.advance(received, target.size);
  };

  return {
    credentials: () => ({ username: device.token }),
    async onConnect() {
      // Resume where the connection was lost (same request id, same chunk), but only a download
      // that was under way when this connection came up.
      const resume = target !== undefined;
      await device.subscribe(resume ? [ATTR_RESPONSE + '+', ATTRS, chunkFilter] : [ATTR_RESPONSE + '+', ATTRS]);
      telemetry();
      requestAttributes();
      // A download whose first request never went out (the connection dropped while subscribing)
      // starts now; one under way asks again for the chunk it waits for.
      if (resume) {
        if (loop.running) loop.resend();
        else loop.start();
      }
    },
    onMessage(topic, payload) {
      const chunk = CHUNK_RESPONSE_RE.exec(topic);
      if (chunk) {
        onChunk(Number(chunk[1]), Number(chunk[2]), payload);
        return;
      }
      if (topic.startsWith(ATTR_RESPONSE)) {
        const body = JSON.parse(payload.toString('utf8')) as { shared?: Shared };
        onInfo(body && typeof body.shared === 'object' && body.shared ? body.shared : {});
      } else if (topic === ATTRS) {
        const body = JSON.parse(payload.toString('utf8')) as Shared & { deleted?: string[] };
        if (Array.isArray(body.deleted)) {
          for (const key of body.deleted) delete shared[key];
          return;
        }
        onInfo(body);
      }
    },
    onStop: () => loop.stop(),
  };
}
