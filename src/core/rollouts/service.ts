import { EventEmitter } from 'events';
import type { OtaRepository } from '../repository';
import { DeviceRecord, FirmwareRecord, OtaError, PresenceEvent } from '../types';
import { trackerFor } from '../device-updates/tracker';
import { ACTIONS, Action, RolloutEngine, RolloutEngineEvents } from './engine';
import type { Counts, Rollout } from './model';
import { objectAt, parsePlan, parseTargets } from './plan';
import { Clock, TargetDevice, systemClock } from './ports';
import { RepositoryEffects } from './repository-effects';

// One rollout engine per repository, wired to its tracker (device events in, notices out) and
// its directory (rollouts.json, rollouts.journal). The admin API and the ota-rollout node use
// this; the engine itself knows nothing of the repository.

export const ROLLOUT_FIELDS = ['name', 'firmware', 'targets', 'plan', 'start'] as const;

/** A rollout as the API shows it: the record, its counts per group and in total, a status line. */
export interface RolloutView extends Omit<Rollout, 'devices'> {
  counts: Counts;
  groupCounts: Counts[];
  status: string;
  devices?: Rollout['devices'];
}

/** How long a takeover waits for a reaction to a notice the last driver may not have sent. */
const IN_DOUBT_MS = 3000;

/**
 * What outlives a repository's rollout service, which is built anew when its instance takes the
 * driver lease (storage/driving.ts): the engine's events relayed (an ota-rollout node or the
 * sidebar listens here, not to one engine), the ota-gateways attached and the devices that
 * connected through them, and the Sming notice gate they ask (it asks the current engine).
 */
class RolloutHub extends EventEmitter<RolloutEngineEvents> {
  private gateways = 0;
  /** Devices that connected through an ota-gateway since one was attached. */
  private readonly gatedDevices = new Set<string>();
  readonly noticeGate: { released(device: string): boolean };

  constructor(repo: OtaRepository) {
    super();
    this.setMaxListeners(0);
    this.noticeGate = { released: (device) => rolloutsFor(repo).engine.noticeReleased(device) };
    repo.on('presence', (ev: PresenceEvent) => {
      // Registered devices only (the gateway authenticates them): the set stays as small as the fleet.
      if (ev?.event === 'connect' && typeof ev.device === 'string' && this.gateways > 0 && repo.devices.get(ev.device)) this.gatedDevices.add(ev.device);
    });
  }

  /** An ota-gateway that asks noticeGate is deployed; call the answer when it closes. */
  attachGateway(): () => void {
    this.gateways += 1;
    let attached = true;
    return () => {
      if (!attached) return;
      attached = false;
      this.gateways -= 1;
      if (this.gateways === 0) this.gatedDevices.clear();
    };
  }

  /** Whether the device's notices pass an ota-gateway that can withhold them. */
  gated(device: string): boolean {
    return this.gateways > 0 && this.gatedDevices.has(device);
  }
}

const hubs = new WeakMap<OtaRepository, RolloutHub>();

function hubOf(repo: OtaRepository): RolloutHub {
  let hub = hubs.get(repo);
  if (!hub) {
    hub = new RolloutHub(repo);
    hubs.set(repo, hub);
  }
  return hub;
}

/** The repository's rollout events, whichever engine drives now (listen here, not to an engine). */
export function rolloutEvents(repo: OtaRepository): EventEmitter<RolloutEngineEvents> {
  return hubOf(repo);
}

export class RolloutService {
  readonly engine: RolloutEngine;
  private readonly hub: RolloutHub;
  private started = false;
  /** Every change of a device state, by any path (an ota-assign msg writes the store directly, with no progress event). */
  private readonly onChanged = (device: string) => this.engine.deviceChanged(device);
  private readonly onPresence = (ev: PresenceEvent) => {
    if (!ev || typeof ev.device !== 'string') return;
    this.engine.presence(ev.device, ev.event);
  };
  /** What an ota-gateway asks before it delivers a Sming notice (src/gateway/notice-gate.ts). */
  readonly noticeGate: { released(device: string): boolean };

  constructor(private readonly repo: OtaRepository, clock: Clock = systemClock) {
    const tracker = trackerFor(repo);
    // On a shared database the other instances kept hearing the devices while no one drove: a
    // device still silent 3 s after a takeover never had the notice the last driver released.
    const inDoubtMs = repo.backend ? IN_DOUBT_MS : undefined;
    this.engine = new RolloutEngine(new RepositoryEffects(repo, tracker), repo.rolloutPersistence(), clock, { inDoubtMs });
    this.hub = hubOf(repo);
    this.noticeGate = this.hub.noticeGate;
    this.engine.on('event', (event) => this.hub.emit('event', event));
    // A rollout's firmware stays in the catalogue until the rollout is over (its devices would
    // otherwise all end cancelled, with nothing to send them).
    repo.firmwareGuards.push(this.guard);
  }

  private readonly guard = (id: string) => (this.engine.usesFirmware(id) ? 'a rollout that is not finished or aborted releases it; abort it first' : undefined);

  /** Listens to device events and catches up on what happened while stopped (idempotent). */
  start(): void {
    if (this.started) return;
    this.started = true;
    const tracker = trackerFor(this.repo);
    tracker.on('changed', this.onChanged);
    this.repo.on('presence', this.onPresence);
    this.engine.resume();
  }

  /** Stops listening and timing; resolves once the rollouts are on disk. */
  stop(): Promise<void> {
    if (!this.started) return Promise.resolve();
    this.started = false;
    trackerFor(this.repo).off('changed', this.onChanged);
    this.repo.off('presence', this.onPresence);
    this.engine.stop();
    return this.engine.persist();
  }

  /** On a shared database one instance drives rollouts (storage/driving.ts): the others may only look. */
  private mustDrive(): void {
    if (!this.repo.isDriver) {
      throw new OtaError('not_driver', 'this Node-RED does not drive rollouts (another instance on the database holds the driver lease): send rollout commands to that instance');
    }
  }

  /** An ota-gateway that asks noticeGate is deployed; call the answer when it closes. */
  attachGateway(): () => void {
    return this.hub.attachGateway();
  }

  view(r: Rollout, withDevices = false): RolloutView {
    const { devices, ...rest } = r;
    const { groups, total } = this.engine.counts(r.id);
    return { ...rest, counts: total, groupCounts: groups, status: RolloutEngine.statusLine(r, total), ...(withDevices ? { devices } : {}) };
  }

  list(): RolloutView[] {
    return this.engine.list().map((r) => this.view(r));
  }

  /** Creates a rollout from a request body (admin API, msg.rollout); `start: true` starts it at once. */
  async create(body: unknown): Promise<Rollout> {
    this.mustDrive();
    const o = objectAt(body, 'rollout', ROLLOUT_FIELDS);
    if (o.name !== undefined && (typeof o.name !== 'string' || o.name.length > 200)) throw new OtaError('bad_field', 'name is a string of at most 200 characters', 'name');
    if (o.start !== undefined && typeof o.start !== 'boolean') throw new OtaError('bad_field', 'start is true or false', 'start');
    const firmware = this.firmwareOf(o.firmware);
    const targets = parseTargets(o.targets);
    const plan = parsePlan(o.plan);
    const devices = this.resolve(targets, firmware);
    const gated = (id: string) => this.hub.gated(id);
    const r = this.engine.create({ ...(typeof o.name === 'string' ? { name: o.name } : {}), firmware, targets, plan, devices, gated });
    if (o.start === true) this.engine.act(r.id, 'start');
    await this.persisted();
    return r;
  }

  /** Runs an action and answers once it is on disk. */
  async act(id: string, action: unknown): Promise<Rollout> {
    this.mustDrive();
    if (typeof action !== 'string' || !(ACTIONS as readonly string[]).includes(action)) {
      throw new OtaError('bad_field', `action is one of ${ACTIONS.join(', ')}`, 'action');
    }
    const r = this.engine.act(id, action as Action);
    await this.persisted();
    return r;
  }

  async remove(id: string): Promise<Rollout> {
    this.mustDrive();
    const r = this.engine.remove(id);
    await this.persisted();
    return r;
  }

  /**
   * Written, and still the driver's: an instance that lost the lease meanwhile wrote nothing (the
   * next driver's rollouts are the truth), and says so rather than answer as if it had.
   */
  private async persisted(): Promise<void> {
    await this.engine.persist();
    this.mustDrive();
  }

  /**
   * Records an assignment made outside the engine (POST /ota/assignments, an ota-assign node's
   * msg), its notices sent already, as a rollout of one group; answers its id (undefined when
   * MAX_ROLLOUTS are kept, none of them an ended assignment: the assignment stands unrecorded).
   */
  recordAssignment(firmware: FirmwareRecord, devices: DeviceRecord[]): string | undefined {
    // On a shared database only the driver keeps rollouts: elsewhere the assignment (device states,
    // notices) happens all the same, and the driver sees its device states change.
    if (!this.repo.isDriver) return undefined;
    const seen = new Set<string>();
    const targets = devices.filter((d) => !seen.has(d.id) && seen.add(d.id)).map((d) => this.target(d, firmware));
    return this.engine.recordAssignment({ firmware, devices: targets })?.id;
  }

  private target(d: DeviceRecord, firmware: FirmwareRecord): TargetDevice {
    const previous = this.previousOf(d, firmware);
    return { id: d.id, dialect: d.dialect, ...(d.attributes.app !== undefined ? { app: d.attributes.app } : {}), ...(previous ? { previous } : {}) };
  }

  private firmwareOf(value: unknown): FirmwareRecord {
    if (typeof value === 'string' && value.trim()) return this.repo.firmware.resolve(value.trim());
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const f = objectAt(value, 'firmware', ['id', 'title', 'version']);
      const s = (v: unknown) => (typeof v === 'string' && v.trim() ? v.trim() : undefined);
      if (s(f.id) || (s(f.title) && s(f.version))) return this.repo.firmware.resolve({ id: s(f.id), title: s(f.title), version: s(f.version) });
    }
    throw new OtaError('bad_field', 'firmware must be an id, or {id}, or {title, version}', 'firmware');
  }

  /** The target devices, in the order the groups take them: the list's order, else by id. */
  private resolve(targets: ReturnType<typeof parseTargets>, firmware: FirmwareRecord): TargetDevice[] {
    let list: DeviceRecord[];
    if (targets.devices) {
      const unknown = targets.devices.filter((id) => !this.repo.devices.get(id));
      if (unknown.length) throw new OtaError('unknown_device', `unknown devices: ${unknown.slice(0, 10).join(', ')}${unknown.length > 10 ? ` and ${unknown.length - 10} more` : ''}`, 'targets.devices');
      list = targets.devices.map((id) => this.repo.devices.get(id) as DeviceRecord);
    } else if (targets.tag) {
      list = this.repo.devices.withTag(targets.tag);
    } else {
      list = this.repo.devices.list();
    }
    const f = targets.filter;
    if (f) {
      list = list.filter((d) =>
        (!f.dialect || d.dialect === f.dialect) &&
        Object.entries(f.attributes ?? {}).every(([k, v]) => Object.prototype.hasOwnProperty.call(d.attributes, k) && d.attributes[k] === v) &&
        (!f.version || this.repo.rollout.get(d.id)?.current?.version === f.version));
    }
    return list.map((d) => this.target(d, firmware));
  }

  /** The catalogue record of what the device runs now: a reported version, or an assignment it completed. */
  private previousOf(d: DeviceRecord, target: FirmwareRecord): string | undefined {
    const s = this.repo.rollout.get(d.id);
    if (!s) return undefined;
    if (s.current?.version) {
      const found = this.repo.firmware.find(s.current.title ?? target.title, s.current.version);
      if (found) return found.id;
    }
    return s.state === 'updated' && s.firmware ? s.firmware : undefined;
  }
}

const services = new WeakMap<OtaRepository, RolloutService>();

/**
 * Stops and forgets the repository's rollout service: the next rolloutsFor() builds one from what
 * the store holds then (a new driver on a shared database starts from what the last one wrote).
 * True when there was one.
 */
export async function dropRollouts(repo: OtaRepository): Promise<boolean> {
  const s = services.get(repo);
  if (!s) return false;
  services.delete(repo);
  repo.firmwareGuards.splice(repo.firmwareGuards.indexOf(s['guard']), 1);
  await s.stop();
  return true;
}

/** The repository's one rollout service. */
export function rolloutsFor(repo: OtaRepository): RolloutService {
  let s = services.get(repo);
  if (!s) {
    s = new RolloutService(repo);
    services.set(repo, s);
  }
  return s;
}
