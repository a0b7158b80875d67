import type { OtaRepository } from '../repository';
import { DeviceRecord, DialectName, FirmwareRecord, MqttOut, OtaError, ProgressError, isDialectName } from '../types';
import type { Delivery } from '../chunking';
import type { DialectOptions, FirmwareRef } from './dialect';
import { dialectFor } from './index';
import { tagoChunkSize } from './tago';
import { hasReceived } from '../device-updates/device-states';

// Assignments and their notices: which firmware goes to which devices, recorded in the rollout
// store, and the downlinks that tell each device. Pure of Node-RED; the ota-assign node is glue.

/** A notice ready for `mqtt out`, with the device it is for. No `action`: mqtt out reads that. */
export interface NoticeMsg extends MqttOut {
  device: string;
  firmware?: FirmwareRecord;
}

export interface AssignResult {
  outs: NoticeMsg[];
  /** Devices a notice went to. */
  notified: string[];
  /** Devices already running the firmware: recorded, not notified. */
  upToDate: string[];
  errors: string[];
  /** Devices whose notice could not be built, with the reason (also in `errors`). */
  failed: Array<{ device: string; error: ProgressError }>;
  warnings: string[];
}

/**
 * The repository's 'command' event (rollout tracker: admin API, retries, devices up to date). The
 * tracker has recorded the change already; ota-assign only sends (or clears) the notices.
 */
export interface OtaCommand {
  action: 'assign' | 'unassign' | 'renotify' | 'clear';
  firmware?: FirmwareRecord;
  devices: string[];
}

export interface AssignConfig {
  /** The dialect this node handles; undefined: every device's own dialect. */
  dialect?: DialectName;
  options(dialect: DialectName): DialectOptions;
}

export type Repo = Pick<OtaRepository, 'devices' | 'firmware' | 'rollout' | 'downloadUrl'> & Partial<Pick<OtaRepository, 'compactDownloadUrl'>>;

const memos = new WeakMap<AssignResult, Map<string, MqttOut[]>>();
/** Per result: the retained notice topic of each device notified, recorded once all are built. */
const retainedOf = new WeakMap<AssignResult, Map<string, string>>();

function empty(): AssignResult {
  return { outs: [], notified: [], upToDate: [], errors: [], failed: [], warnings: [] };
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

export class AssignService {
  constructor(
    private readonly repo: Repo,
    private readonly delivery: Delivery,
    private readonly config: AssignConfig,
  ) {}

  handles(dialect: DialectName): boolean {
    return !this.config.dialect || this.config.dialect === dialect;
  }

  /** msg.firmware: an id, {id}, {title, version}, or a catalogue record (firmware-store output). */
  resolveFirmware(ref: unknown): FirmwareRecord {
    if (typeof ref === 'string' && ref.trim()) return this.repo.firmware.resolve(ref.trim());
    if (ref && typeof ref === 'object') {
      const o = ref as Record<string, unknown>;
      const id = str(o.id);
      const title = str(o.title);
      const version = str(o.version);
      const record = id ? this.repo.firmware.get(id) : title && version ? this.repo.firmware.find(title, version) : undefined;
      if (record) return record;
      if (id || (title && version)) {
        const label = title && version ? `${title} ${version}` : id;
        throw new OtaError('unknown_firmware', `firmware ${label} is not in the catalogue (deleted, or never stored)`, 'firmware');
      }
    }
    throw new OtaError('bad_field', 'name the firmware: msg.firmware as an id, {title, version}, or a record from firmware-store', 'firmware');
  }

  /**
   * msg.devices: an id, a list of ids, or inline {id, dialect, attributes, tags} (registered when
   * new); or every device with `tag`. Unknown ids are reported in `errors`, the rest go ahead.
   */
  async resolveDevices(spec: unknown, tag: string | undefined, errors: string[]): Promise<DeviceRecord[]> {
    if (spec === undefined || spec === null || spec === '') {
      if (!tag) throw new OtaError('bad_field', 'name the devices: msg.devices (an id or a list), or a tag (msg.tag or the node\'s tag)', 'devices');
      const tagged = this.repo.devices.withTag(tag);
      if (!tagged.length) throw new OtaError('unknown_tag', `no device has the tag "${tag}"`, 'tag');
      return tagged;
    }
    const list = Array.isArray(spec) ? spec : [spec];
    const out: DeviceRecord[] = [];
    for (const item of list) {
      try {
        out.push(await this.device(item));
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    return out;
  }

  private async device(item: unknown): Promise<DeviceRecord> {
    if (typeof item === 'string') return this.repo.devices.require(item.trim());
    if (item && typeof item === 'object') {
      const o = item as Record<string, unknown>;
      const id = str(o.id);
      const known = id ? this.repo.devices.get(id) : undefined;
      if (known) return known;
      const dialect = o.dialect ?? this.config.dialect;
      if (!isDialectName(dialect)) throw new OtaError('bad_field', `device ${id ?? '?'} is not registered: give it a dialect to register it`, 'dialect');
      const { device } = await this.repo.devices.register({ id: o.id, dialect, attributes: o.attributes, tags: o.tags });
      return device;
    }
    throw new OtaError('bad_field', 'each device is an id or {id, dialect, attributes}', 'devices');
  }

  /** Records the assignment and builds each device's notice. `reassign` false keeps an identical assignment as it is. */
  async assign(firmware: FirmwareRecord, devices: DeviceRecord[], reassign = true, result = empty()): Promise<AssignResult> {
    for (const device of devices) {
      const current = this.repo.rollout.get(device.id);
      const state = reassign || current?.firmware !== firmware.id ? this.repo.rollout.assign(device.id, device.dialect, firmware) : current;
      if (state?.state === 'updated') {
        result.upToDate.push(device.id);
        continue;
      }
      const outs = await this.notice(device, firmware, result);
      if (outs) this.sent(device, outs, result);
      else {
        // Assigned, and failed with the reason: the rollout shows it, not only a log line.
        const failure = result.failed.find((f) => f.device === device.id);
        if (failure) this.repo.rollout.markFailed(device.id, failure.error, firmware.id);
      }
    }
    this.recordRetained(result);
    return result;
  }

  /**
   * Sends the notice of each device's assignment again (a device that asks, msg.action renotify).
   * `record` false builds the notices only: the rollout tracker counted the attempt already.
   */
  async renotify(devices: DeviceRecord[], result = empty(), record = true, given?: FirmwareRecord): Promise<AssignResult> {
    for (const device of devices) {
      const state = this.repo.rollout.get(device.id);
      const id = given?.id ?? state?.firmware;
      if (!id) {
        result.errors.push(`${device.id}: no firmware is assigned`);
        continue;
      }
      const firmware = this.repo.firmware.get(id);
      if (!firmware) {
        const label = given ? `${given.title} ${given.version}` : state?.target ? `${state.target.title} ${state.target.version}` : id;
        const message = `its assigned firmware ${label} was deleted; assign another`;
        result.errors.push(`${device.id}: ${message}`);
        result.failed.push({ device: device.id, error: { code: 'unknown_firmware', message } });
        continue;
      }
      const outs = await this.notice(device, firmware, result);
      if (outs) this.sent(device, outs, result, record);
    }
    this.recordRetained(result);
    return result;
  }

  /**
   * Notes where each notice waits retained (the tracker clears it from there, and reads a device's
   * subscription to it as delivery). Last step of a run, with no await before the notices go out,
   * so nothing can clear a topic between this and the publish of its notice.
   */
  private recordRetained(result: AssignResult): void {
    const topics = retainedOf.get(result);
    if (!topics) return;
    retainedOf.delete(result);
    for (const [device, topic] of topics) this.repo.rollout.setRetained(device, topic);
  }

  /** True while a device outside `except` still waits for the shared retained notice on `topic`. */
  private sharedNoticeAwaited(topic: string, except: ReadonlySet<string>): boolean {
    for (const r of this.repo.rollout.records()) if (r.retained === topic && r.firmware && !except.has(r.device) && !hasReceived(r.state)) return true;
    return false;
  }

  /** What clears each device's notice from the broker; the assignment stays (a device up to date). */
  clear(devices: DeviceRecord[], hint?: FirmwareRef, result = empty()): AssignResult {
    const batch = new Set(devices.map((d) => d.id));
    for (const device of devices) {
      const state = this.repo.rollout.get(device.id);
      const firmware: FirmwareRef | undefined = hint ?? (state?.firmware ? this.repo.firmware.get(state.firmware) : undefined) ?? state?.target;
      try {
        const dialect = dialectFor(device.dialect);
        const outs = dialect.clear(device, firmware, this.config.options(device.dialect));
        for (const out of outs) {
          // A shared notice (Sming: every device of an app and version line) stays while another
          // device still waits for it: unassigning one device must not take the image from the rest.
          if (dialect.retainedNotice === 'shared' && this.sharedNoticeAwaited(out.topic, batch)) continue;
          if (result.outs.some((o) => o.topic === out.topic && o.payload === out.payload)) continue;
          result.outs.push({ ...out, device: device.id });
        }
        if (state?.retained !== undefined) this.repo.rollout.setRetained(device.id, undefined);
        result.notified.push(device.id);
      } catch (err) {
        result.errors.push(`${device.id}: ${(err as Error).message}`);
      }
    }
    return result;
  }

  /** Clears what the notices left on the broker and ends the assignments. */
  unassign(devices: DeviceRecord[], hint?: FirmwareRef, result = empty()): AssignResult {
    this.clear(devices, hint, result);
    for (const device of devices) {
      if (this.repo.rollout.get(device.id)?.firmware) this.repo.rollout.unassign(device.id);
      this.delivery.requests.end(device.id);
    }
    return result;
  }

  /**
   * Uplinks ota-assign answers: ThingsBoard attribute requests (how a booting device learns of its
   * assignment) and Tencent, TagoIO and Tasmota version reports that differ from the assignment (sent the
   * update again: that is how those devices ask after a failure or a restart). Undefined when the
   * message is no uplink of a dialect handled here.
   */
  async uplink(topic: string, payload: unknown, fallbackDevice?: string): Promise<AssignResult | undefined> {
    for (const name of ['thingsboard', 'tencent', 'tago', 'tasmota'] as const) {
      if (!this.handles(name)) continue;
      const dialect = dialectFor(name);
      const options = fallbackDevice ? { ...this.config.options(name), device: fallbackDevice } : this.config.options(name);
      const u = dialect.parseUplink(topic, payload, options);
      if (u.kind === 'ignored' && u.foreign) continue;
      const result = empty();
      if (u.kind === 'invalid') {
        result.errors.push(`${name}${u.device ? ` device ${u.device}` : ''}: ${u.error}`);
      } else if (u.kind === 'attribute-request' && dialect.attributeReply) {
        const state = this.repo.rollout.get(u.device);
        const firmware = state?.firmware ? this.repo.firmware.get(state.firmware) : undefined;
        result.outs.push({ ...dialect.attributeReply(u, firmware, options), device: u.device });
        if (firmware && state?.state === 'assigned') {
          this.repo.rollout.markNotified(u.device);
          result.notified.push(u.device);
        }
      } else if (u.kind === 'progress' && (name === 'tencent' || name === 'tago' || name === 'tasmota')) {
        for (const event of u.events) {
          if (event.state !== 'notified' || event.version === undefined) continue; // not a version report
          const state = this.repo.rollout.get(event.device);
          const device = this.repo.devices.get(event.device);
          if (device && state?.firmware && state.target && state.target.version !== event.version) {
            await this.renotify([device], result);
          }
        }
      }
      return result;
    }
    return undefined;
  }

  private async notice(device: DeviceRecord, firmware: FirmwareRecord, result: AssignResult): Promise<MqttOut[] | undefined> {
    try {
      const dialect = dialectFor(device.dialect);
      const options = this.config.options(device.dialect);
      // A Sming notice is the whole image, the same for every device of an app: build it once.
      const memoKey = device.dialect === 'sming' ? `${firmware.id}|${device.attributes.app ?? options.attributes?.app ?? ''}` : undefined;
      let memo = memos.get(result);
      if (memoKey && memo?.has(memoKey)) return memo.get(memoKey);
      // Sming sends the image; Tasmota's URL says whether it is gzip (.bin.gz), from its first bytes.
      const image = device.dialect === 'sming' || device.dialect === 'tasmota' ? await this.delivery.cache.get(firmware) : undefined;
      const compact = this.repo.compactDownloadUrl?.bind(this.repo);
      const outs = dialect.notice(
        {
          device,
          firmware,
          downloadUrl: () => this.repo.downloadUrl(firmware, device.id),
          ...(compact ? { compactDownloadUrl: (file: string) => compact(firmware, device.id, file) } : {}),
          ...(image ? { image } : {}),
          warn: (text) => result.warnings.push(text),
        },
        options,
      );
      if (memoKey) {
        if (!memo) memos.set(result, (memo = new Map()));
        memo.set(memoKey, outs);
      }
      return outs;
    } catch (err) {
      const message = (err as Error).message;
      result.errors.push(`${device.id}: ${message}`);
      result.failed.push({ device: device.id, error: { code: err instanceof OtaError ? err.code : 'notice_failed', message } });
      return undefined;
    }
  }

  private sent(device: DeviceRecord, outs: MqttOut[], result: AssignResult, record = true): void {
    if (record) this.repo.rollout.markNotified(device.id);
    const retained = dialectFor(device.dialect).retainedNotice ? outs.find((o) => o.retain) : undefined;
    if (retained) {
      let topics = retainedOf.get(result);
      if (!topics) retainedOf.set(result, (topics = new Map()));
      topics.set(device.id, retained.topic);
    }
    if (device.dialect === 'tago') this.repo.rollout.setChunkSize(device.id, tagoChunkSize(this.config.options('tago')));
    for (const out of outs) {
      // Sming devices of one app share a retained topic: one publish of the image is enough.
      if (out.retain && result.outs.some((o) => o.topic === out.topic && o.payload === out.payload)) continue;
      result.outs.push({ ...out, device: device.id });
    }
    result.notified.push(device.id);
  }
}
