import type { OtaRepository } from '../repository';
import type { DeviceChange } from '../devices';
import type { DeviceRecord, FirmwareRecord, PresenceEvent } from '../types';
import { RolloutTracker, trackerFor } from '../device-updates/tracker';
import { isActive } from '../device-updates/device-states';
import { ErrorThrottle } from '../error-throttle';
import {
  EntityTopics, HaSettings, PAYLOAD_INSTALL, bridgeAvailabilityTopic, commandFilter, configFilter, discoveryConfig,
  entityState, latestFirmware, objectIdFor, objectIdOfCommand, objectIdOfConfig, topicsFor, topicsOfObject,
} from './entity';

// Publishes one Home Assistant update entity per registered device and takes their Install
// commands. Pure of Node-RED: the node glue gives it a publish function (its own MQTT connection,
// whose last will marks the bridge offline) and what Install does.
//
// Bounded at fleet scale (10,000 devices): changes only mark a device dirty; a tick every
// `tickMs` publishes at most `perTick` messages, a device's state at most once per
// `minIntervalMs`, and only when its payload differs from what was last published. A slow sweep
// re-checks every device, so changes without an event (a firmware stored) reach HA too.

export interface BridgeLimits {
  tickMs: number;
  perTick: number;
  /** Devices looked at per tick (most need nothing): bounds a tick's CPU, a sweep's included. */
  checksPerTick: number;
  minIntervalMs: number;
  sweepMs: number;
  /** Install commands: at most one per device per this long, and `installsPerMinute` in all. */
  installIntervalMs: number;
  installsPerMinute: number;
}

export const DEFAULT_LIMITS: BridgeLimits = {
  tickMs: 200,
  perTick: 100, // 500 messages/s: 10,000 configs, states and availabilities in a minute after a (re)connect
  checksPerTick: 500,
  minIntervalMs: 500, // a device's state at most twice a second
  sweepMs: 30_000,
  installIntervalMs: 10_000,
  installsPerMinute: 60,
};

export interface BridgePorts {
  /** Publishes at QoS 1; false when the connection is down (kept for the next tick). */
  publish(topic: string, payload: string, retain: boolean): boolean;
  /** What Install does: assign `firmware` to `device` (see install.ts). */
  install(device: DeviceRecord, firmware: FirmwareRecord): Promise<unknown> | unknown;
  log(text: string): void;
  now?: () => number;
}

/** What was last published for one device, and what is waiting. */
interface Entity {
  device: string;
  topics: ReturnType<typeof topicsFor>;
  /** The config must be (re)published: a new device, a changed record, a reconnect. */
  configDue: boolean;
  config?: string;
  state?: string;
  availability?: string;
  online: boolean;
  session?: string;
  sentAt: number;
  lastInstall: number;
}

const MAX_COMMAND_BYTES = 64;

export class HomeAssistantBridge {
  private readonly entities = new Map<string, Entity>();
  private readonly byObject = new Map<string, string>();
  private readonly dirty = new Set<string>();
  /** Entities to remove (empty retained config, state, availability), kept until published. */
  private readonly removals = new Map<string, EntityTopics>();
  private readonly logs = new ErrorThrottle(60_000);
  private readonly limits: BridgeLimits;
  private readonly now: () => number;
  private tick?: ReturnType<typeof setInterval>;
  private sweep?: ReturnType<typeof setInterval>;
  private installs: number[] = [];
  private readonly tracker: RolloutTracker;
  private readonly onChange = (c: DeviceChange) => this.deviceChanged(c);
  private readonly onProgress = (_e: unknown, record: { device: string }) => this.mark(record.device);
  private readonly onUnassigned = (devices: string[]) => { for (const d of devices) this.mark(d); };
  private readonly onPresence = (ev: PresenceEvent) => this.presence(ev);

  constructor(
    private readonly repo: OtaRepository,
    readonly settings: HaSettings,
    private readonly ports: BridgePorts,
    limits: Partial<BridgeLimits> = {},
    private readonly swVersion?: string,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.now = ports.now ?? Date.now;
    this.tracker = trackerFor(repo);
  }

  get commandFilter(): string {
    return commandFilter(this.settings);
  }

  /** Subscribed for a moment after connecting: retained configs of devices deleted meanwhile. */
  get configFilter(): string {
    return configFilter(this.settings);
  }

  get bridgeTopic(): string {
    return bridgeAvailabilityTopic(this.settings);
  }

  start(): void {
    if (this.tick) return;
    for (const d of this.repo.devices.list()) this.add(d.id);
    this.repo.devices.on('change', this.onChange);
    this.tracker.on('progress', this.onProgress);
    this.tracker.on('unassigned', this.onUnassigned);
    this.repo.on('presence', this.onPresence);
    this.tick = setInterval(() => this.flush(), this.limits.tickMs);
    this.sweep = setInterval(() => this.sweepNow(), this.limits.sweepMs);
    this.tick.unref?.();
    this.sweep.unref?.();
  }

  stop(): void {
    clearInterval(this.tick);
    clearInterval(this.sweep);
    this.tick = this.sweep = undefined;
    this.repo.devices.off('change', this.onChange);
    this.tracker.off('progress', this.onProgress);
    this.tracker.off('unassigned', this.onUnassigned);
    this.repo.off('presence', this.onPresence);
  }

  /** Marks every device for a re-check: what changed without an event (a firmware stored) goes out. */
  sweepNow(): void {
    for (const id of this.entities.keys()) this.dirty.add(id);
  }

  /**
   * After a (re)connect: the broker may have lost its retained messages (no persistence), so every
   * config, state and availability goes out again, at the same bounded rate.
   */
  resync(): void {
    for (const e of this.entities.values()) {
      e.config = e.state = e.availability = undefined;
      e.configDue = true;
      this.dirty.add(e.device);
    }
  }

  private add(id: string): void {
    if (this.entities.has(id)) return;
    const topics = topicsFor(this.settings, id);
    this.entities.set(id, { device: id, topics, configDue: true, online: false, sentAt: -Infinity, lastInstall: -Infinity });
    this.byObject.set(objectIdFor(id), id);
    this.dirty.add(id);
  }

  private mark(id: string): void {
    if (this.entities.has(id)) this.dirty.add(id);
  }

  private deviceChanged(c: DeviceChange): void {
    if (c.after && !c.before) this.add(c.id);
    else if (c.after) {
      const e = this.entities.get(c.id);
      if (e) e.configDue = true;
      this.mark(c.id);
    } else this.remove(c.id);
  }

  /** A deleted device: its entity goes (empty retained config), and its retained topics are emptied. */
  private remove(id: string): void {
    const e = this.entities.get(id);
    if (!e) return;
    this.entities.delete(id);
    this.byObject.delete(objectIdFor(id));
    this.dirty.delete(id);
    this.removals.set(objectIdFor(id), e.topics); // next tick, first thing
  }

  /**
   * A retained config on our config filter (the broker hands them out on subscribe): one whose
   * object id no registered device has was left by a device deleted while Node-RED was not
   * connected, and goes. Bounded like every other publish.
   */
  retainedConfig(topic: string, payload: Buffer | string): void {
    const object = objectIdOfConfig(this.settings, topic);
    if (object === undefined || payload.length === 0 || this.byObject.has(object)) return;
    if (this.removals.size < 100_000) this.removals.set(object, topicsOfObject(this.settings, object));
  }

  /** Publishes pending removals within `budget`; returns what is left of it. */
  private flushRemovals(budget: number): number {
    for (const [object, t] of this.removals) {
      if (budget < 3) break;
      if (this.byObject.has(object)) {
        this.removals.delete(object); // registered again meanwhile
        continue;
      }
      if (!this.ports.publish(t.config, '', true)) return 0;
      this.ports.publish(t.state, '', true);
      this.ports.publish(t.availability, '', true);
      this.removals.delete(object);
      budget -= 3;
    }
    return budget;
  }

  private presence(ev: PresenceEvent): void {
    const e = ev && typeof ev.device === 'string' ? this.entities.get(ev.device) : undefined;
    if (!e || !this.settings.presence) return;
    if (ev.event === 'disconnect') {
      // A late disconnect of an earlier connection says nothing of the current one.
      if (ev.session !== undefined && e.session !== undefined && ev.session !== e.session) return;
      e.online = false;
    } else {
      e.online = true;
      if (ev.session !== undefined) e.session = ev.session;
    }
    this.dirty.add(e.device);
  }

  /** Publishes what is due, within the per-tick budgets; the rest waits for the next tick. */
  flush(): void {
    let budget = this.flushRemovals(this.limits.perTick);
    let checks = this.limits.checksPerTick;
    const now = this.now();
    const newest = new Map<string, FirmwareRecord | undefined>();
    const later: string[] = [];
    for (const id of this.dirty) {
      if (budget <= 0 || checks-- <= 0) break;
      const e = this.entities.get(id);
      const device = this.repo.devices.get(id);
      if (!e || !device) {
        this.dirty.delete(id);
        continue;
      }
      if (e.configDue) {
        const config = JSON.stringify(discoveryConfig(this.settings, device, this.swVersion));
        if (config !== e.config) {
          if (!this.ports.publish(e.topics.config, config, true)) break;
          e.config = config;
          budget -= 1;
        }
        e.configDue = false;
      }
      const availability = e.online ? 'online' : 'offline';
      if (this.settings.presence && availability !== e.availability) {
        if (budget <= 0) break;
        if (!this.ports.publish(e.topics.availability, availability, true)) break;
        e.availability = availability;
        budget -= 1;
      }
      const record = this.repo.rollout.get(id);
      const state = JSON.stringify(entityState(record, latestFirmware(record, this.repo.firmware, newest)));
      if (state !== e.state) {
        if (budget <= 0) break;
        if (now - e.sentAt < this.limits.minIntervalMs) {
          // Too soon for this device: to the back of the queue, so it holds up no other.
          this.dirty.delete(id);
          later.push(id);
          continue;
        }
        if (!this.ports.publish(e.topics.state, state, true)) break;
        e.state = state;
        e.sentAt = now;
        budget -= 1;
      }
      this.dirty.delete(id);
    }
    for (const id of later) this.dirty.add(id);
  }

  /** How many devices wait for a publish (tests, status). */
  get pending(): number {
    return this.dirty.size + this.removals.size;
  }

  private note(key: string, text: string): void {
    const { report, held } = this.logs.admit(key, this.now());
    if (report) this.ports.log(held ? `${text} (${held} more like it not logged)` : text);
  }

  /**
   * A message on the command filter. Only `payload_install` on the command topic of a registered
   * device does anything, unretained, at most once per device per installIntervalMs and
   * installsPerMinute in all; everything else is ignored with a log line (at most one a minute per kind).
   */
  command(topic: string, payload: Buffer | string, retained = false): void {
    const objectId = objectIdOfCommand(this.settings, topic);
    if (objectId === undefined) return; // another subscription of the connection
    // HA publishes Install unretained (our config leaves `retain` at its default, false); a
    // retained one would start the update again on every reconnect.
    if (retained) {
      this.note('retained', `Home Assistant: a retained Install on ${topic.slice(0, 200)} ignored: clear it with an empty retained publish`);
      return;
    }
    const id = this.byObject.get(objectId);
    const device = id ? this.repo.devices.get(id) : undefined;
    const e = id ? this.entities.get(id) : undefined;
    if (!device || !e) {
      this.note('unknown', `Home Assistant: Install for unknown device "${objectId.slice(0, 64)}" ignored`);
      return;
    }
    if (payload.length > MAX_COMMAND_BYTES || payload.toString() !== PAYLOAD_INSTALL) {
      this.note('payload', `Home Assistant: ${device.id}: command ignored (the payload is not "${PAYLOAD_INSTALL}")`);
      return;
    }
    const now = this.now();
    if (now - e.lastInstall < this.limits.installIntervalMs) {
      this.note(`again:${device.id}`, `Home Assistant: ${device.id}: Install again within ${this.limits.installIntervalMs / 1000} s ignored`);
      return;
    }
    this.installs = this.installs.filter((t) => now - t < 60_000);
    if (this.installs.length >= this.limits.installsPerMinute) {
      this.note('rate', `Home Assistant: more than ${this.limits.installsPerMinute} Install commands a minute: ${device.id} ignored`);
      return;
    }
    const record = this.repo.rollout.get(device.id);
    const firmware = latestFirmware(record, this.repo.firmware);
    if (!firmware) {
      this.note(`none:${device.id}`, `Home Assistant: ${device.id}: no firmware to install (nothing assigned, and none in the catalogue for its title)`);
      return;
    }
    if (record?.firmware === firmware.id && (isActive(record.state) || record.state === 'updated')) {
      this.note(`busy:${device.id}`, `Home Assistant: ${device.id}: ${firmware.title} ${firmware.version} is ${record.state === 'updated' ? 'installed' : 'on its way'} already`);
      return;
    }
    e.lastInstall = now;
    this.installs.push(now);
    Promise.resolve()
      .then(() => this.ports.install(device, firmware))
      .catch((err: Error) => this.ports.log(`Home Assistant: ${device.id}: Install failed: ${err.message}`))
      .finally(() => this.mark(device.id));
  }
}
