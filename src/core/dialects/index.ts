import { DialectName, OtaError, isDialectName, DIALECTS } from '../types';
import type { Dialect } from './dialect';
import { biotz } from './biotz';
import { sming } from './sming';
import { tago } from './tago';
import { tasmota } from './tasmota';
import { tencent } from './tencent';
import { thingsboard } from './thingsboard';

export * from './dialect';

const ALL: Record<DialectName, Dialect> = { biotz, sming, tago, tasmota, tencent, thingsboard };

/** The dialect module for a name; a clear error for anything else. */
/** The dialect of that name, or undefined (a record from an older version, a bad value). */
export function dialectOf(name: string): Dialect | undefined {
  return isDialectName(name) ? dialectFor(name) : undefined;
}

export function dialectFor(name: unknown): Dialect {
  if (!isDialectName(name)) throw new OtaError('bad_dialect', `unknown dialect ${JSON.stringify(name)}: use one of ${DIALECTS.join(', ')}`, 'dialect');
  return ALL[name];
}

export { biotz, sming, tago, tasmota, tencent, thingsboard };
