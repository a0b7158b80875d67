import type { DialectName } from '../types';
import type { Rollout } from './model';

// The engine's edges: time, the fleet's state and effects, and storage. Specs give fakes (sinon
// timers, an in-memory store); the repository gives the real ones (effects.ts, persistence.ts).

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** In [0, 1): jitter. */
  random(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // The engine's timer alone must not keep a process (or a test run) alive.
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  random: Math.random,
};

/** What the engine needs to know of a device's update: its assignment and state (rollout-store). */
export interface DeviceStatus {
  firmware?: string;
  state: string;
  error?: string;
  /** Its dialect reports nothing (Sming): silence after a notice says nothing. */
  silent?: boolean;
}

/**
 * What the engine asks of the world. It decides; these act. Each call is synchronous in intent:
 * by the time it returns, the notices are on their way (the flow sends them).
 */
export interface RolloutEffects {
  /** Assign the firmware and send the notices. */
  notify(firmware: string, devices: string[]): void;
  /** Send again to devices that failed or timed out. */
  retry(firmware: string, devices: string[]): void;
  /** Withdraw notices not yet acted on, and end those assignments. */
  clear(firmware: string, devices: string[]): void;
  /** Assign a device the firmware it ran before (abort with revert). */
  revert(firmware: string, devices: string[]): void;
  /**
   * Record devices as notified without sending: after a restart between writing their release
   * and the tracker recording it, whether the notice went is unknown. Sending again could notify
   * twice; the tracker's timeout and retry send again only if the device never acts.
   */
  adopt(firmware: string, devices: string[]): void;
  status(device: string): DeviceStatus | undefined;
}

export interface RolloutPersistence {
  load(): Rollout[];
  /** The rollouts changed: write them soon (a lost write is recovered from the release journal). */
  save(snapshot: () => Rollout[]): void;
  /** Durable before it returns: these devices' notices are about to be sent. */
  released(rollout: string, devices: string[], at: number): void;
  /** Released devices of each rollout not yet in the last snapshot that landed (replayed on load). */
  replay(): Map<string, Array<{ devices: string[]; at: number }>>;
  flush(): Promise<void>;
}

/** A device a rollout may target, as the fleet knows it. */
export interface TargetDevice {
  id: string;
  dialect: DialectName;
  /** Sming: the app whose shared retained topic it listens on. */
  app?: string;
  /** The firmware it runs now, when known (what revert gives back). */
  previous?: string;
}
