// Device states written by several instances. With a shared subscription the broker hands a
// device's report to any instance, and a device on a fast network reports (downloading, even
// updated) before the driver's assignment row is written (write-behind) or has reached that
// instance (NOTIFY). Last writer wins would then lose one half: the assignment (the report's
// instance knew none, or only the device's previous one) or the progress (the driver's "notified"
// row lands after the device's "updated"). The upsert below keeps both: progress from the row
// without an assignment, the assignment's fields from the row with one, when the progress is no
// older than the assignment; a row that does not know the assignment changes nothing else (a
// report written late, a write under the previous assignment). An unassignment still wins. And as
// two instances each apply the reports they were given (in whatever order their event loops get
// to them), a state further along the same notice (verified, then updated) is not undone by an
// earlier one written last.

/** The fields an assignment sets (device-states.ts assign/markNotified); the rest is progress. */
const ASSIGNMENT_KEYS = ['firmware', 'target', 'assignedAt', 'notifiedAt', 'attempts', 'retained', 'chunkSize'];

const keep = (from: string) => `jsonb_strip_nulls(jsonb_build_object(${ASSIGNMENT_KEYS.map((k) => `'${k}', ${from}->'${k}'`).join(', ')}))`;
/** `progress`'s own fields under `assigned`'s assignment. */
const combine = (progress: string, assigned: string) => `(${progress} - ARRAY[${ASSIGNMENT_KEYS.map((k) => `'${k}'`).join(', ')}]) || ${keep(assigned)}`;

const assignedAt = (doc: string) => `COALESCE(${doc}->>'assignedAt', '')`;

/** An assignment ended (device-states.ts unassign): idle, no firmware, the ended one's assignedAt kept. */
const unassigned = (doc: string) => `(${doc}->>'state' = 'idle' AND NOT (${doc} ? 'firmware') AND ${doc} ? 'assignedAt')`;

/**
 * `assigned` holds an assignment `other` does not know: `other` has none, or an older one of
 * another firmware (its instance had not yet heard of the newer one when it wrote).
 */
const unaware = (other: string, assigned: string) =>
  `(${assigned} ? 'firmware' AND (NOT (${other} ? 'firmware')
    OR (${other}->>'firmware' <> ${assigned}->>'firmware' AND ${assignedAt(other)} < ${assignedAt(assigned)})))`;

/**
 * `other` knows no assignment and is the device's progress, heard after `assigned`'s: progress
 * toward it. (A row under an older assignment of another firmware was read against that target,
 * its "updated" may say "failed: wrong version": not taken.)
 */
const progressAfter = (other: string, assigned: string) =>
  `(${assigned} ? 'firmware' AND NOT (${other} ? 'firmware') AND ${other}->>'state' NOT IN ('idle', 'assigned', 'notified')
    AND ${other}->>'stateSince' >= ${assignedAt(assigned)})`;

/** How far along its update a state is; failures and idle have none (the newer write wins). */
const rank = (doc: string) => `array_position(ARRAY['assigned', 'notified', 'downloading', 'downloaded', 'verified', 'updating', 'updated'], ${doc}->>'state')`;

const OLD = 'ota_device_states.doc';
const NEW = 'EXCLUDED.doc';

/**
 * The doc an upsert keeps, in order: an unassignment of the row's assignment (or a later one),
 * and not a late write of the assignment it ended; progress heard toward the row's assignment by
 * an instance that knew none; nothing else from a row that does not know the row's assignment
 * (older progress, a device first seen idle, a write under the previous assignment); an
 * assignment joining progress already recorded toward it; the state further along one notice;
 * else the new row.
 */
export const MERGED_STATE = `CASE
  WHEN ${unassigned(NEW)} AND ${assignedAt(NEW)} >= ${assignedAt(OLD)} THEN ${NEW}
  WHEN ${unassigned(OLD)} AND ${NEW} ? 'firmware' AND ${assignedAt(NEW)} <= ${assignedAt(OLD)} THEN ${OLD}
  WHEN ${progressAfter(NEW, OLD)} THEN ${combine(NEW, OLD)}
  WHEN ${unaware(NEW, OLD)} THEN ${OLD}
  WHEN ${progressAfter(OLD, NEW)} AND ${NEW}->>'state' IN ('assigned', 'notified') THEN ${combine(OLD, NEW)}
  WHEN ${OLD}->>'firmware' IS NOT DISTINCT FROM ${NEW}->>'firmware' AND ${OLD}->>'attempts' IS NOT DISTINCT FROM ${NEW}->>'attempts'
    AND ${rank(OLD)} > ${rank(NEW)} THEN ${OLD}
  ELSE ${NEW} END`;
