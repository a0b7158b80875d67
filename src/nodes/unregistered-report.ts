import { UnregisteredTally } from '../core/device-updates/unregistered';
import type { Node } from './red';

// Uplinks from unregistered devices, counted by a node and reported with node.warn once a minute
// at most: one line however many arrive (a flood of made-up ids must not flood the log).

export const UNREGISTERED_REPORT_MS = 60_000;

export interface UnregisteredReport {
  add(device: string): void;
  close(): void;
}

export function reportUnregistered(node: Node): UnregisteredReport {
  const tally = new UnregisteredTally();
  const timer = setInterval(() => {
    const text = tally.take();
    if (text) node.warn(text);
  }, UNREGISTERED_REPORT_MS);
  timer.unref?.();
  return {
    add: (device) => tally.add(device),
    close: () => clearInterval(timer),
  };
}
