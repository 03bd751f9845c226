// Config of the `simulator` input: synthetic series, so the agent runs with no hardware or servers.
import { Type, type StaticDecode } from '@sinclair/typebox';
import { ComponentType, Duration, Measurement, Tags, defineComponent, unset, withDefault } from '../../src/core/schema/kit.js';

export const SimulatorInputSchema = Type.Object(
  {
    type: ComponentType('simulator', 'Generates synthetic readings; for demos and for testing a pipeline without hardware.'),
    series: withDefault(Type.Integer({ minimum: 1, maximum: 100_000, description: 'Number of series generated.' }), 3),
    interval: withDefault(Duration({ description: 'Time between readings of each series.' }), '1s'),
    measurement: Measurement(),
    tags: Tags('Tags added to every point of this input.'),
  },
  { additionalProperties: false, description: 'A generator of synthetic readings.' },
);

export type SimulatorInputConfig = StaticDecode<typeof SimulatorInputSchema>;

export const simulatorInput = defineComponent({
  type: 'simulator',
  schema: SimulatorInputSchema,
  finish(cfg, ctx) {
    if (unset(cfg.measurement)) cfg.measurement = ctx.id;
  },
});
