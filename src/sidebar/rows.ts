import type { DeviceRecord } from '../core/types';
import type { DeviceState } from '../core/device-updates/device-states';

// One device as the sidebar's table shows it, as a short array: at 10,000 devices the live feed
// and the first fetch carry thousands of these, and key names would double their size. The editor
// half (plugins/ota-sidebar.html, rowOf) reads the same positions from the admin API's device view.

export type DeviceRow = [
  id: string,
  dialect: string,
  state: string,
  percent: number | null,
  current: string | null,
  target: string | null,
  attempts: number,
  lastError: string | null,
  lastSeen: string | null,
  tags: string[],
];

/** Title and version in one cell ("app 1.2.0"), or the version alone when the title is unknown. */
function versionText(v: { title?: string; version?: string } | undefined): string | null {
  if (!v?.version) return null;
  return v.title ? `${v.title} ${v.version}` : v.version;
}

/** Longest error text a row carries: a device's own message is untrusted and unbounded. */
export const MAX_ERROR_CHARS = 160;

export function deviceRow(device: DeviceRecord, state: DeviceState | undefined): DeviceRow {
  const error = state?.lastError ? String(state.lastError.message ?? state.lastError.code).slice(0, MAX_ERROR_CHARS) : null;
  return [
    device.id,
    device.dialect,
    state?.firmware ? state.state : 'idle',
    state?.percent ?? null,
    versionText(state?.current),
    versionText(state?.target),
    state?.attempts ?? 0,
    error,
    state?.lastSeen ?? null,
    device.tags,
  ];
}
