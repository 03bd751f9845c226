// Edge rules without peers: the config section and its errors, conditions, validation counters, and
// alert timing (cooldown, resolution, silence) on a fake clock.
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Unsigned, type Point } from '../src/core/point.js';
import { AlertEvaluator, alertPoint, silenceTickMs, type AlertEvent } from '../src/rules/alerts.js';
import { formatCondition, parseCondition, testCondition } from '../src/rules/condition.js';
import { RulesEngine } from '../src/rules/engine.js';
import { registerRulesMetrics } from '../src/rules/metrics.js';
import { Channel, alertPayload, alertTopic, type AlertPayload, type Transport } from '../src/rules/notify.js';
import { Validator } from '../src/rules/validate.js';
import { point, quiet, recordingLogger, rulesConfig, rulesErrors } from './helpers/rules.js';

describe('the rules config section', () => {
  it('decodes validation, alert and notify settings with their defaults', () => {
    const c = rulesConfig(
      'validate:',
      '  - { measurement: climate, field: temperature, min: -50, max: 100 }',
      '  - { name: quality, field: q, min: 192, action: drop_point, tags: { bus: "1" } }',
      'alerts:',
      '  - { name: hot, measurement: climate, field: temperature, when: "> 35", cooldown: 10m, tags: { room: a } }',
      '  - { name: silent, measurement: climate, silence: 300s, severity: critical }',
      '  - { name: cold, measurement: climate, when: "temperature < 5", resolve: false, message: "{tags.room} is {value}" }',
      'notify:',
      '  mqtt: { url: "mqtt://127.0.0.1:1883", min_severity: warning }',
      '  webhook: { url: "https://example.test/hook", timeout: 2s, headers: { Authorization: "Bearer x" } }',
      '  retries: 5',
    );
    expect(c.validate).toEqual([
      { measurement: 'climate', field: 'temperature', min: -50, max: 100, action: 'drop', tags: {} },
      { name: 'quality', field: 'q', min: 192, action: 'drop_point', tags: { bus: '1' } },
    ]);
    expect(c.flag_tag).toEqual({ quality: 'bad' });
    expect(c.alerts).toEqual([
      { name: 'hot', measurement: 'climate', field: 'temperature', when: '> 35', cooldown: 600_000, tags: { room: 'a' }, severity: 'warning', per: 'series', resolve: true },
      { name: 'silent', measurement: 'climate', silence: 300_000, severity: 'critical', cooldown: 600_000, tags: {}, per: 'series', resolve: true },
      // The field named in the condition is filled in.
      { name: 'cold', measurement: 'climate', field: 'temperature', when: 'temperature < 5', resolve: false, message: '{tags.room} is {value}', cooldown: 600_000, tags: {}, severity: 'warning', per: 'series' },
    ]);
    expect(c.notify).toEqual({
      mqtt: { url: 'mqtt://127.0.0.1:1883', topic: 'sluice/{agent}/alerts', qos: 1, retain: false, timeout: 5000, min_severity: 'warning' },
      webhook: { url: 'https://example.test/hook', timeout: 2000, headers: { Authorization: 'Bearer x' }, min_severity: 'info' },
      retries: 5,
      retry_backoff: 1000,
      queue_size: 1000,
    });
  });

  it('reports a condition it cannot read at its value, naming the character', () => {
    expect(rulesErrors('alerts:', '  - { name: hot, measurement: climate, field: t, when: "> warm" }')).toEqual([
      '4:58 rules.alerts[0].when: cannot read condition "> warm": expected a number at character 3, found "warm"; write a condition such as "> 35", "<= -5", "== true", "!= \\"ok\\"", "between 10 and 20" or "outside 10 20"',
    ]);
    expect(rulesErrors('alerts:', '  - name: eq', '    measurement: m', '    when: "t = 3"')).toEqual([
      '6:13 rules.alerts[0].when: cannot read condition "t = 3": "=" at character 3 is not an operator; write "==" to compare for equality',
    ]);
    expect(rulesErrors('alerts:', '  - { name: r, measurement: m, when: "t between 20 10" }')).toEqual([
      '4:40 rules.alerts[0].when: cannot read condition "t between 20 10": the range 20..10 is empty; write the low end first',
    ]);
    expect(rulesErrors('alerts:', '  - { name: r, measurement: m, when: "t > 3 4" }')[0]).toContain('expected the end of the condition at character 7, found "4"');
  });

  it('checks what the schema cannot: triggers, fields, names, ranges and templates', () => {
    expect(
      rulesErrors(
        'validate:',
        '  - { measurement: m, field: t }',
        '  - { measurement: m, field: h, min: 10, max: 0 }',
        '  - { measurement: m, field: t, max: 1 }',
        'alerts:',
        '  - { name: a, measurement: m }',
        '  - { name: a, measurement: m, field: t, when: "> 1", silence: 1m }',
        '  - { name: b, measurement: m, when: "> 1" }',
        '  - { name: c, measurement: m, field: t, when: "h > 1" }',
        '  - { name: d, measurement: m, field: t, when: "> 1", per: measurement, message: "{valu} at {tags.room}" }',
        'notify:',
        '  mqtt: { url: "mqtt://h", topic: "a/{site}/+", password: p }',
      ),
    ).toEqual([
      '4:7 rules.validate[0]: a validation rule needs min, max or both',
      '5:49 rules.validate[1].max: max 0 is below min 10; no value could be valid',
      '6:32 rules.validate[2].field: another validation rule ([0]) is also named "m.t"; give one a distinct name',
      '8:7 rules.alerts[0]: an alert rule needs when (a condition on a field) or silence (a duration)',
      '9:15 rules.alerts[1].name: alert rule [0] is also named "a"; names must be unique',
      '9:57 rules.alerts[1].silence: set either when or silence: a rule has one trigger',
      '10:40 rules.alerts[2].when: which field? set field, or lead the condition with it ("temperature > 1")',
      '11:50 rules.alerts[3].when: the condition tests field "h" but field is "t"; name the field once',
      '12:57 rules.alerts[4].per: per applies to silence rules only',
      '12:84 rules.alerts[4].message: unknown placeholder {valu}; known: {rule}, {severity}, {state}, {measurement}, {field}, {value}, {condition}, {silence}, {series}, {tags.NAME}',
      '14:37 rules.notify.mqtt.topic: unknown placeholder {site}; known: {agent}, {rule}, {severity}, {state}, {measurement}',
      '14:37 rules.notify.mqtt.topic: a topic to publish to cannot hold the wildcards + or #',
      '14:51 rules.notify.mqtt.password: a password is sent only with a username',
    ]);
  });

  it('rejects unknown keys, bad enums and bare-number durations like every section', () => {
    expect(
      rulesErrors(
        'alerts:',
        '  - { name: hot, measurement: m, field: t, when: "> 1", severty: critical, cooldown: 10 }',
        '  - { name: "bad name", measurement: m, silence: 5m, severity: urgent }',
        'validate:',
        '  - { field: t, min: 0, action: discard }',
      ),
    ).toEqual([
      '4:59 rules.alerts[0].severty: unknown key "severty"; did you mean "severity"?',
      '4:88 rules.alerts[0].cooldown: bare number 10 has no unit; expected a duration with a unit, such as "500ms", "30s", "5m", "1h30m" or "7d" (units: ms, s, m, h, d, w = 7d, y = 365d)',
      '5:15 rules.alerts[1].name: "bad name" is not valid; expected a name of letters, digits, "_", "." and "-", starting with a letter or digit, at most 64 characters',
      '5:66 rules.alerts[1].severity: "urgent" is not allowed; one of: info, warning, critical',
      '7:35 rules.validate[0].action: "discard" is not allowed; one of: drop, drop_point, flag',
    ]);
  });
});

describe('conditions', () => {
  it('parse into a canonical form, with or without a leading field', () => {
    const cases: [string, string | undefined, string][] = [
      ['> 35', undefined, '> 35'],
      ['temperature>=-5.5', 'temperature', '>= -5.5'],
      ['  <  1e3 ', undefined, '< 1000'],
      ['== true', undefined, '== true'],
      ["alarm != 'off'", 'alarm', '!= "off"'],
      ['level between 10 and 20', 'level', 'between 10 and 20'],
      ['OUTSIDE -1 1', undefined, 'outside -1 and 1'],
    ];
    for (const [text, field, canonical] of cases) {
      const r = parseCondition(text);
      if (!r.ok) throw new Error(r.message);
      expect(r.value.field, text).toBe(field);
      expect(formatCondition(r.value.condition), text).toBe(canonical);
    }
    for (const bad of ['', '>', '35', '> "x"', '== maybe', 'between 1', 't >> 3', '=> 3']) expect(parseCondition(bad).ok, bad).toBe(false);
  });

  it('test numbers of every type, booleans and strings; other kinds say nothing; NaN never fires', () => {
    const c = (text: string) => {
      const r = parseCondition(text);
      if (!r.ok) throw new Error(r.message);
      return r.value.condition;
    };
    expect(testCondition(c('> 35'), 35.5)).toBe(true);
    expect(testCondition(c('> 35'), 35)).toBe(false);
    expect(testCondition(c('>= 35'), 35n)).toBe(true);
    expect(testCondition(c('< 5'), new Unsigned(4n))).toBe(true);
    expect(testCondition(c('== 3'), 3n)).toBe(true);
    expect(testCondition(c('!= 0'), 0)).toBe(false);
    expect(testCondition(c('between 10 20'), 10)).toBe(true);
    expect(testCondition(c('between 10 20'), 20.0001)).toBe(false);
    expect(testCondition(c('outside 10 20'), 9)).toBe(true);
    expect(testCondition(c('== true'), true)).toBe(true);
    expect(testCondition(c('!= true'), false)).toBe(true);
    expect(testCondition(c('== "fault"'), 'fault')).toBe(true);
    expect(testCondition(c('> 35'), 'hot')).toBeUndefined();
    expect(testCondition(c('== true'), 1)).toBeUndefined();
    expect(testCondition(c('> 35'), true)).toBeUndefined();
    for (const cond of ['> 1', '< 1', '!= 1', 'outside 0 1']) expect(testCondition(c(cond), NaN), cond).toBe(false);
  });
});

describe('validation', () => {
  const validator = (...lines: string[]) => {
    const c = rulesConfig('validate:', ...lines);
    return new Validator(c.validate, c.flag_tag);
  };

  it('drops invalid values, keeps the good values around them, and counts exactly', () => {
    const v = validator('  - { measurement: climate, field: temperature, min: -50, max: 100 }', '  - { measurement: climate, field: humidity, min: 0, max: 100 }');
    const input = [
      point('climate', { room: 'a' }, { temperature: 21.5, humidity: 40 }, 1000),
      point('climate', { room: 'a' }, { temperature: 150, humidity: 41 }, 2000), // temperature bad
      point('climate', { room: 'a' }, { temperature: -60, humidity: -1 }, 3000), // both bad: the point goes
      point('climate', { room: 'a' }, { temperature: NaN, humidity: 42 }, 4000),
      point('climate', { room: 'a' }, { temperature: 'ERR', humidity: 43 }, 5000),
      point('climate', { room: 'a' }, { temperature: 100, humidity: 0 }, 6000), // the bounds are valid
      point('other', {}, { temperature: 500 }, 7000), // another measurement: not checked
    ];
    const snapshot = structuredClone(input);
    const { points, flagged } = v.apply(input);
    expect(points.map((p) => [p.timeUs / 1000, p.fields])).toEqual([
      [1000, { temperature: 21.5, humidity: 40 }],
      [2000, { humidity: 41 }],
      [4000, { humidity: 42 }],
      [5000, { humidity: 43 }],
      [6000, { temperature: 100, humidity: 0 }],
      [7000, { temperature: 500 }],
    ]);
    expect(flagged.size).toBe(0);
    // Inputs may reuse their objects: nothing handed in is changed.
    expect(input).toEqual(snapshot);
    expect(v.stats()).toEqual({
      'climate.temperature': {
        measurement: 'climate',
        field: 'temperature',
        action: 'drop',
        checked: 6,
        invalid: 4,
        below_min: 1,
        above_max: 1,
        not_a_number: 2,
        dropped_values: 4,
        dropped_points: 0,
        flagged_points: 0,
      },
      'climate.humidity': {
        measurement: 'climate',
        field: 'humidity',
        action: 'drop',
        checked: 6,
        invalid: 1,
        below_min: 1,
        above_max: 0,
        not_a_number: 0,
        dropped_values: 1,
        dropped_points: 1,
        flagged_points: 0,
      },
    });
  });

  it('drop_point drops the whole point on a bad quality value; flag tags it and marks it for the alert rules', () => {
    const v = validator(
      '  - { name: quality, field: q, min: 192, action: drop_point }',
      '  - { measurement: tank, field: level, max: 10, action: flag, tags: { site: x } }',
    );
    const { points, flagged } = v.apply([
      point('tank', { site: 'x' }, { level: 5, q: 192 }, 1),
      point('tank', { site: 'x' }, { level: 5, q: 0 }, 2),
      point('pump', {}, { rpm: 1000, q: 100n }, 3), // any measurement
      point('tank', { site: 'x' }, { level: 11, q: 255 }, 4),
      point('tank', { site: 'y' }, { level: 11 }, 5), // tag filter: not checked
    ]);
    expect(points.map((p) => [p.timeUs / 1000, p.tags, p.fields])).toEqual([
      [1, { site: 'x' }, { level: 5, q: 192 }],
      [4, { site: 'x', quality: 'bad' }, { level: 11, q: 255 }],
      [5, { site: 'y' }, { level: 11 }],
    ]);
    expect([...flagged].map((p) => p.timeUs / 1000)).toEqual([4]);
    const s = v.stats();
    expect(s.quality).toMatchObject({ checked: 4, invalid: 2, below_min: 2, dropped_values: 4, dropped_points: 2 });
    expect(s['tank.level']).toMatchObject({ checked: 2, invalid: 1, above_max: 1, flagged_points: 1, dropped_values: 0, dropped_points: 0 });
  });

  it('uses rules.flag_tag for flagged points', () => {
    const c = rulesConfig('flag_tag: { valid: "false" }', 'validate:', '  - { field: t, max: 1, action: flag }');
    const { points } = new Validator(c.validate, c.flag_tag).apply([point('m', { a: 'b' }, { t: 2 })]);
    expect(points[0].tags).toEqual({ a: 'b', valid: 'false' });
  });
});

/** Drives an engine on a fake clock; alerts land in `stored` and `sent` (a transport that records). */
function harness(...ruleLines: string[]) {
  const config = rulesConfig(...ruleLines);
  const stored: Point[] = [];
  const sent: AlertPayload[] = [];
  const transport: Transport = {
    start() {},
    send: (payload) => {
      sent.push(payload);
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
  const channel = new Channel('webhook', transport, { retries: 0, retryBackoffMs: 1000, queueSize: 100, minSeverity: 'info' }, quiet);
  const engine = new RulesEngine(config, {
    agentId: 'gw-test',
    agentTags: { site: 'p1' },
    log: quiet,
    store: (points) => {
      stored.push(...points);
      return Promise.resolve();
    },
    channels: [channel],
  });
  return { engine, stored, sent, states: () => stored.map((p) => `${p.tags.rule}:${String(p.fields.state)}`) };
}

describe('alert rules on a fake clock', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    vi.setSystemTime(new Date('2024-05-01T12:00:00Z'));
  });
  afterEach(() => vi.useRealTimers());

  it('fire once per cooldown while the condition holds, then resolve once when it clears', async () => {
    const h = harness('alerts:', '  - { name: hot, measurement: climate, field: temperature, when: "> 35", cooldown: 10m, tags: { room: a } }');
    await h.engine.start();
    const feed = (temperature: number, room = 'a') => h.engine.process([point('climate', { room, site: 'p1' }, { temperature })]);

    feed(30);
    expect(h.stored).toEqual([]);
    // Hot for 25 minutes, a reading every 30 s: fires at 0, 10 and 20 minutes.
    for (let i = 0; i < 50; i++) {
      feed(36 + (i % 3));
      await vi.advanceTimersByTimeAsync(30_000);
    }
    feed(99, 'b'); // another room: not this rule's series
    feed(20);
    feed(10); // already resolved: nothing more
    expect(h.states()).toEqual(['hot:firing', 'hot:firing', 'hot:firing', 'hot:resolved']);
    expect(h.stored.map((p) => (p.timeUs / 1000 - Date.parse('2024-05-01T12:00:00Z')) / 60_000)).toEqual([0, 10, 20, 25]);
    expect(h.engine.stats().alerts.hot).toEqual({ severity: 'warning', kind: 'condition', fired: 3, resolved: 1, suppressed: 0, active: 0 });

    // The point: measurement sluice_alert, the rule's and the series' tags, state/message/value.
    expect(h.stored[0]).toEqual({
      measurement: 'sluice_alert',
      tags: { site: 'p1', room: 'a', rule: 'hot', severity: 'warning' },
      fields: { state: 'firing', message: 'hot: temperature is 36 (> 35) on climate room=a,site=p1', value: 36 },
      timeUs: Date.parse('2024-05-01T12:00:00Z') * 1000,
    });
    expect(h.stored[3].fields).toEqual({ state: 'resolved', message: 'hot resolved: temperature is 20 on climate room=a,site=p1', value: 20 });
    await h.engine.stop();
    expect(h.sent.map((s) => `${s.rule}:${s.state}`)).toEqual(h.states());
  });

  it('a condition that clears and comes back within the cooldown does not fire again until the cooldown has passed', async () => {
    const h = harness('alerts:', '  - { name: hi, measurement: m, field: v, when: ">= 10", cooldown: 5m }');
    await h.engine.start();
    const feed = (v: number) => h.engine.process([point('m', { s: '1' }, { v })]);
    feed(10); // fires
    await vi.advanceTimersByTimeAsync(60_000);
    feed(0); // resolved
    await vi.advanceTimersByTimeAsync(60_000);
    feed(11); // back within the cooldown: suppressed
    feed(0); // clears again: no resolved, nothing was announced
    feed(12); // suppressed again
    await vi.advanceTimersByTimeAsync(3 * 60_000); // 5 minutes after the first firing
    feed(12); // still holds, cooldown over: fires
    expect(h.states()).toEqual(['hi:firing', 'hi:resolved', 'hi:firing']);
    expect(h.engine.stats().alerts.hi).toMatchObject({ fired: 2, resolved: 1, suppressed: 2, active: 1 });
    await h.engine.stop();
  });

  it('alerts several series of one rule independently, and two events in one millisecond keep distinct times', async () => {
    const h = harness('alerts:', '  - { name: hot, measurement: m, when: "v > 1", cooldown: 1h }');
    await h.engine.start();
    h.engine.process([point('m', { s: '1' }, { v: 2 }), point('m', { s: '2' }, { v: 2 }), point('m', { s: '1' }, { v: 0 }), point('m', { s: '2' }, { v: 2 })]);
    expect(h.stored.map((p) => `${p.tags.s}:${String(p.fields.state)}`)).toEqual(['1:firing', '2:firing', '1:resolved']);
    const t0 = Date.now() * 1000;
    expect(h.stored.map((p) => p.timeUs)).toEqual([t0, t0, t0 + 1]);
    await h.engine.stop();
  });

  it('silence fires when no data arrived for the duration, per series, repeats per cooldown and resolves when data comes back', async () => {
    const h = harness('alerts:', '  - { name: quiet, measurement: climate, silence: 300s, severity: critical, cooldown: 10m }');
    await h.engine.start();
    expect(silenceTickMs(rulesConfig('alerts:', '  - { name: q, measurement: m, silence: 300s }').alerts)).toBe(30_000);
    const feed = (sensor: string) => h.engine.process([point('climate', { sensor }, { t: 1 })]);

    // Nothing at all since the start: after 300 s (checked every 30 s) it fires without series tags.
    await vi.advanceTimersByTimeAsync(299_000);
    expect(h.stored).toEqual([]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.stored.map((p) => [p.tags, p.fields.state])).toEqual([[{ site: 'p1', rule: 'quiet', severity: 'critical' }, 'firing']]);
    expect(h.stored[0].fields.message).toBe('quiet: no data from climate for 5m');

    // Two sensors speak: the measurement-wide alert resolves; each sensor is then watched on its own.
    feed('s1');
    feed('s2');
    expect(h.states()).toEqual(['quiet:firing', 'quiet:resolved']);
    for (let i = 0; i < 40; i++) {
      await vi.advanceTimersByTimeAsync(30_000);
      feed('s1'); // s1 keeps speaking for 20 minutes, s2 is silent
    }
    const s2 = h.stored.slice(2);
    // s2 fired once it was silent for 300 s (at the check then), and again 10 minutes later.
    expect(s2.map((p) => [p.tags.sensor, p.fields.state, (p.timeUs - s2[0].timeUs) / 60e6])).toEqual([
      ['s2', 'firing', 0],
      ['s2', 'firing', 10],
    ]);
    expect(s2[0].fields).toEqual({ state: 'firing', message: 'quiet: no data from climate sensor=s2 for 5m', value: 300 });
    feed('s2');
    expect(h.stored.at(-1)!.tags.sensor).toBe('s2');
    expect(h.stored.at(-1)!.fields.state).toBe('resolved');
    expect(h.engine.stats().alerts.quiet).toEqual({ severity: 'critical', kind: 'silence', fired: 3, resolved: 2, suppressed: 0, active: 0 });
    await h.engine.stop();
  });

  it('per: measurement watches the measurement as a whole; a field silence needs that field', async () => {
    const h = harness(
      'alerts:',
      '  - { name: any, measurement: m, silence: 10s, per: measurement, tags: { line: "1" }, cooldown: 1h }',
      '  - { name: flow, measurement: m, field: flow, silence: 10s, cooldown: 1h, message: "{rule} {severity} {state} {measurement} {field} {value} {condition} {silence} [{series}] {tags.s}" }',
    );
    await h.engine.start();
    expect(silenceTickMs(rulesConfig('alerts:', '  - { name: q, measurement: m, silence: 1s }').alerts)).toBe(1000);
    for (let i = 0; i < 15; i++) {
      await vi.advanceTimersByTimeAsync(1000);
      h.engine.process([point('m', { line: '1', s: String(i % 3) }, { pressure: 1 })]);
    }
    // Data keeps coming, but never a flow field.
    expect(h.states()).toEqual(['flow:firing']);
    expect(h.stored[0].fields.message).toBe('flow warning firing m flow 10s silence 10s 10s [] ');
    h.engine.process([point('m', { line: '1', s: '0' }, { flow: 3 })]);
    expect(h.states()).toEqual(['flow:firing', 'flow:resolved']);
    await vi.advanceTimersByTimeAsync(12_000);
    // Now both the measurement and the flow of series s=0 are silent.
    expect(h.stored.slice(2).map((p) => [p.tags.rule, p.tags.s, p.tags.line])).toEqual([
      ['any', undefined, '1'],
      ['flow', '0', '1'],
    ]);
    await h.engine.stop();
  });

  it('ignores flagged and dropped values; an engine without alert rules stores nothing extra', async () => {
    const h = harness('validate:', '  - { field: t, max: 100, action: flag }', '  - { field: u, max: 100 }', 'alerts:', '  - { name: a, measurement: m, when: "t > 50" }', '  - { name: b, measurement: m, when: "u > 50" }');
    await h.engine.start();
    const kept = h.engine.process([point('m', {}, { t: 500 }), point('m', {}, { u: 500, x: 1 })]);
    expect(kept.map((p) => p.fields)).toEqual([{ t: 500 }, { x: 1 }]);
    expect(h.stored).toEqual([]);
    h.engine.process([point('m', {}, { t: 60, u: 60 })]);
    expect(h.states()).toEqual(['a:firing', 'b:firing']);
    await h.engine.stop();
    expect(RulesEngine.create(rulesConfig('notify: { retries: 1 }'), { agentId: 'x', agentTags: {}, log: quiet, store: () => Promise.resolve() })).toBeUndefined();
  });

  it('counts alert points the store refused', async () => {
    const config = rulesConfig('alerts:', '  - { name: a, measurement: m, when: "v > 1" }');
    const engine = new RulesEngine(config, { agentId: 'x', agentTags: {}, log: quiet, store: () => Promise.reject(new Error('full')), channels: [] });
    await engine.start();
    engine.process([point('m', {}, { v: 2 })]);
    await vi.advanceTimersByTimeAsync(0);
    expect(engine.stats().alert_points).toEqual({ stored: 0, refused: 1 });
    await engine.stop();
  });
});

describe('notification queues', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    vi.setSystemTime(new Date('2024-05-01T12:00:00Z'));
  });
  afterEach(() => vi.useRealTimers());

  const event = (rule: string, severity: AlertEvent['severity'] = 'warning'): AlertPayload =>
    alertPayload(
      { id: rule, rule, severity, state: 'firing', measurement: 'm', field: 'v', tags: {}, value: 1, condition: '> 0', message: rule, timeMs: 0, timeUs: 0, sinceMs: 0, dataTimeMs: 0 },
      'gw',
    );

  it('retry with exponential backoff, give up after the retries, log once per outage, and skip lower severities', async () => {
    const attempts: [string, number][] = [];
    let up = false;
    const transport: Transport = {
      start() {},
      send: (p) => {
        attempts.push([p.rule, Date.now() - Date.parse('2024-05-01T12:00:00Z')]);
        return up ? Promise.resolve() : Promise.reject(new Error('connection refused'));
      },
      close: () => Promise.resolve(),
    };
    const log = recordingLogger();
    const ch = new Channel('mqtt', transport, { retries: 3, retryBackoffMs: 1000, queueSize: 10, minSeverity: 'warning' }, log);
    ch.start();
    ch.enqueue(event('info-only', 'info'));
    ch.enqueue(event('a'));
    ch.enqueue(event('b', 'critical'));
    await vi.advanceTimersByTimeAsync(60_000);
    // a: at 0, +1 s, +2 s, +4 s; then b right after a gave up.
    expect(attempts).toEqual([
      ['a', 0],
      ['a', 1000],
      ['a', 3000],
      ['a', 7000],
      ['b', 7000],
      ['b', 8000],
      ['b', 10_000],
      ['b', 14_000],
    ]);
    expect(ch.stats()).toMatchObject({ sent: 0, failed: 2, retries: 6, dropped: 0, queued: 0, last_error: 'connection refused' });
    expect(log.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    up = true;
    ch.enqueue(event('c'));
    await vi.advanceTimersByTimeAsync(0);
    expect(ch.stats()).toMatchObject({ sent: 1, failed: 2, last_success_ms: Date.now() });
    expect(log.lines.map((l) => l.msg)).toContain('alerts: mqtt delivers again');
    await ch.stop();
  });

  it('a full queue discards the oldest alert; stop gives the rest one attempt within the grace period', async () => {
    const release: (() => void)[] = [];
    const sent: string[] = [];
    const transport: Transport = {
      start() {},
      send: (p) =>
        new Promise<void>((resolve) => {
          release.push(() => {
            sent.push(p.rule);
            resolve();
          });
        }),
      close: () => Promise.resolve(),
    };
    const ch = new Channel('webhook', transport, { retries: 3, retryBackoffMs: 1000, queueSize: 2, minSeverity: 'info' }, quiet);
    for (const r of ['a', 'b', 'c', 'd']) ch.enqueue(event(r)); // a in flight; b, c queued; d pushes b out
    expect(ch.stats()).toMatchObject({ queued: 3, dropped: 1 });
    release.shift()!();
    await vi.advanceTimersByTimeAsync(0);
    const stopped = ch.stop(2000);
    release.shift()!(); // c
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(2000); // d never answers: given up at the end of the grace period
    await stopped;
    expect(sent).toEqual(['a', 'c']);
    expect(ch.stats()).toMatchObject({ sent: 2, dropped: 2, queued: 0 });
    ch.enqueue(event('late'));
    expect(ch.stats().dropped).toBe(3);
  });

  it('fills the topic template without letting a measurement add levels', () => {
    const p = event('hot', 'critical');
    expect(alertTopic('sluice/{agent}/alerts/{severity}/{rule}/{state}', p)).toBe('sluice/gw/alerts/critical/hot/firing');
    expect(alertTopic('a/{measurement}', { ...p, measurement: 'x/+#' })).toBe('a/x___');
  });

  it('writes 64-bit integers beyond 2^53 as strings in the payload, and numbers as numbers', () => {
    const base = { id: 'i', rule: 'r', severity: 'info' as const, state: 'firing' as const, measurement: 'm', field: 'v', tags: {}, condition: '> 0', message: '', timeMs: 0, timeUs: 0, sinceMs: 0, dataTimeMs: 0 };
    expect(alertPayload({ ...base, value: 2n ** 60n }, 'gw').value).toBe('1152921504606846976');
    expect(alertPayload({ ...base, value: new Unsigned(7n) }, 'gw').value).toBe(7);
    expect(alertPayload({ ...base, value: Infinity }, 'gw').value).toBe('Infinity');
    expect(alertPoint({ ...base, value: true }, 'sluice_alert').fields.value).toBe(1);
    expect(alertPoint({ ...base, value: 'fault' }, 'sluice_alert').fields).toEqual({ state: 'firing', message: '' });
  });
});

describe('the evaluator alone', () => {
  it('is pure: the same points at the same times give the same events', () => {
    const rules = rulesConfig('alerts:', '  - { name: hot, measurement: m, when: "v > 1", cooldown: 1m }').alerts;
    const run = () => {
      const e = new AlertEvaluator(rules, 0);
      const out: string[] = [];
      for (let t = 0; t < 300_000; t += 10_000) for (const ev of e.observe([point('m', {}, { v: t % 90_000 < 45_000 ? 2 : 0 }, t)], t)) out.push(`${ev.state}@${t / 1000}`);
      return out;
    };
    expect(run()).toEqual(['firing@0', 'resolved@50', 'firing@90', 'resolved@140', 'firing@180', 'resolved@230', 'firing@270']);
    expect(run()).toEqual(run());
  });
});

describe('metrics', () => {
  it('exposes the engine counters as sluice_rules_* metrics', async () => {
    const h = harness(
      'validate:',
      '  - { measurement: m, field: t, min: 0, max: 100 }',
      'alerts:',
      '  - { name: hot, measurement: m, when: "t > 50", severity: critical }',
    );
    await h.engine.start();
    h.engine.process([point('m', {}, { t: 70 }), point('m', {}, { t: 170 }), point('m', {}, { t: NaN })]);
    await h.engine.stop();
    const registry = new Registry();
    registerRulesMetrics(registry, () => h.engine.stats());
    const text = await registry.metrics();
    for (const line of [
      'sluice_rules_values_checked_total{rule="m.t"} 3',
      'sluice_rules_values_invalid_total{rule="m.t",reason="above_max"} 1',
      'sluice_rules_values_invalid_total{rule="m.t",reason="not_a_number"} 1',
      'sluice_rules_values_dropped_total{rule="m.t"} 2',
      'sluice_rules_points_dropped_total{rule="m.t"} 2',
      'sluice_rules_alerts_total{rule="hot",severity="critical",state="firing"} 1',
      'sluice_rules_alerts_active{rule="hot",severity="critical"} 1',
      'sluice_rules_notify_sent_total{channel="webhook"} 1',
      'sluice_rules_notify_queued{channel="webhook"} 0',
      'sluice_rules_alert_points_refused_total 0',
    ]) {
      expect(text).toContain(line);
    }
    // Without rules the metrics are there, with no series.
    const empty = new Registry();
    registerRulesMetrics(empty, () => undefined);
    expect(await empty.metrics()).toContain('# TYPE sluice_rules_alerts_total counter');
  });
});
