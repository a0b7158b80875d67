'use strict';
const assert = require('assert');
const { parsePlan, parseTargets, splitGroups } = require('../../../dist/core/rollouts/plan');

const refuses = (fn, field, message) => assert.throws(fn, (err) => err.field === field && (!message || message.test(err.message)));

describe('rollout plan', () => {
  it('fills the defaults: one group, success 100 % then next, no error condition, no rate', () => {
    assert.deepStrictEqual(parsePlan(undefined), { groups: 1, success: { percent: 100, action: 'next' }, jitterMs: 0, soakMs: 0, revertOnAbort: false });
  });

  it('names an unknown field with its path, however deep', () => {
    refuses(() => parsePlan({ group: 3 }), 'plan.group', /unknown field "group" in plan/);
    refuses(() => parsePlan({ groups: [{ percent: 5, sucess: {} }, {}] }), 'plan.groups[0].sucess');
    refuses(() => parsePlan({ rate: { ramp: { base: 1, factor: 2, every: 1, maximum: 9 } } }), 'rate.ramp.maximum');
    refuses(() => parseTargets({ tags: 'x' }), 'targets.tags');
  });

  it('refuses groups it cannot split: both percent and count, a size missing before the last, a bad start time', () => {
    refuses(() => parsePlan({ groups: [{ percent: 5, count: 3 }, {}] }), 'plan.groups[0]', /not both/);
    refuses(() => parsePlan({ groups: [{}, { percent: 5 }] }), 'plan.groups[0]', /only the last group may take the rest/);
    refuses(() => parsePlan({ groups: [{ count: 2, startAt: 'tomorrow' }, {}] }), 'plan.groups[0].startAt');
    refuses(() => parsePlan({ groups: 0 }), 'plan.groups');
    refuses(() => parsePlan({ error: { minFinished: 3 } }), 'plan.error', /count or a percent/);
    refuses(() => parsePlan({ error: { count: 1, action: 'stop' } }), 'plan.error.action');
    refuses(() => parsePlan({ rate: { perMinute: 10, ramp: {} } }), 'rate');
  });

  it('inherits a group\'s missing condition fields from the plan, and a group\'s kind of limit replaces the plan\'s', () => {
    const p = parsePlan({ success: { percent: 90 }, error: { count: 2, minFinished: 5, action: 'abort' }, groups: [{ count: 1, success: { action: 'pause' }, error: { percent: 20 } }, {}] });
    assert.deepStrictEqual(p.groups[0].success, { percent: 90, action: 'pause' });
    assert.deepStrictEqual(p.groups[0].error, { percent: 20, minFinished: 5, action: 'abort' });
  });

  it('splits percent of all targets (rounded up), counts, and the rest; drops empty groups', () => {
    assert.deepStrictEqual(splitGroups([{ percent: 1 }, { percent: 10 }, {}], 50).map((g) => g.size), [1, 5, 44]);
    assert.deepStrictEqual(splitGroups([{ count: 5 }, { count: 5 }, {}], 7).map((g) => g.size), [5, 2]);
    assert.deepStrictEqual(splitGroups(4, 3).map((g) => g.size), [1, 1, 1]);
  });

  it('needs targets: devices or a tag, and a filter may narrow them', () => {
    refuses(() => parseTargets({}), 'targets');
    refuses(() => parseTargets({ devices: ['a'], tag: 'x' }), 'targets', /not both/);
    refuses(() => parseTargets({ filter: { dialect: 'lora' } }), 'targets.filter.dialect');
    assert.deepStrictEqual(parseTargets({ devices: [' a ', 'a', 'b'] }), { devices: ['a', 'b'] });
  });
});
