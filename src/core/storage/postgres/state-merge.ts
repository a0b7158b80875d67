// Device states written by several instances. With a shared subscription the broker hands a
// device's report to any instance, and a device on a fast network reports (downloading, even
// updated) before the driver's assignment row is written (write-behind) or has reached that
// instance (NOTIFY). Last writer wins would then lose one half: the assignment (the report's
// instance knew none, and its row has no firmware) or the progress (the driver's "notified" row
// lands after the device's "updated"). The upsert below keeps both: progress from the row
// without an assignment, the assignment's fields from the row with one, when the progress is no
// older than the assignment. An unassignment (state idle, no firmware) still wins. And as two
// instances each apply the reports they were given (in whatever order their event loops get to
// them), a state further along the same notice (verified, then updated) is not undone by an
// earlier one written last.

/** The fields an assignment sets (device-states.ts assign/markNotified); the rest is progress. */
const ASSIGNMENT_KEYS = ['firmware', 'target', 'assignedAt', 'notifiedAt', 'attempts', 'retained', 'chunkSize'];

const keep = (from: string) => `jsonb_strip_nulls(jsonb_build_object(${ASSIGNMENT_KEYS.map((k) => `'${k}', ${from}->'${k}'`).join(', ')}))`;

/** Progress in `progress` (no firmware) heard no earlier than `assigned`'s assignment. */
const after = (progress: string, assigned: string) =>
  `(NOT (${progress} ? 'firmware') AND ${progress}->>'state' <> 'idle' AND ${assigned} ? 'firmware'
    AND ${progress}->>'stateSince' >= COALESCE(${assigned}->>'assignedAt', ''))`;

/** How far along its update a state is; failures and idle have none (the newer write wins). */
const rank = (doc: string) => `array_position(ARRAY['assigned', 'notified', 'downloading', 'downloaded', 'verified', 'updating', 'updated'], ${doc}->>'state')`;

const OLD = 'ota_device_states.doc';
const NEW = 'EXCLUDED.doc';

/** The doc an upsert keeps: the merge above, else the new row. */
export const MERGED_STATE = `CASE
  WHEN ${after(NEW, OLD)} THEN ${NEW} || ${keep(OLD)}
  WHEN ${after(OLD, NEW)} AND ${NEW}->>'state' IN ('assigned', 'notified') THEN ${OLD} || ${keep(NEW)}
  WHEN ${OLD}->>'firmware' IS NOT DISTINCT FROM ${NEW}->>'firmware' AND ${OLD}->>'attempts' IS NOT DISTINCT FROM ${NEW}->>'attempts'
    AND ${rank(OLD)} > ${rank(NEW)} THEN ${OLD}
  ELSE ${NEW} END`;
