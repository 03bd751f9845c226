// Config of the `serial` input: a line-oriented sensor on a serial port.
import { Type, type StaticDecode } from '@sinclair/typebox';
import {
  ComponentType,
  IntegerEnum,
  JsonPayload,
  Measurement,
  NonEmpty,
  StringEnum,
  TIME_PRECISIONS,
  Tags,
  defineComponent,
  unset,
  withDefault,
} from '../../src/core/schema/kit.js';

export const SERIAL_FORMATS = ['csv', 'json', 'influx', 'regex'] as const;
export const CSV_TIME_FORMATS = ['rfc3339', 'unix', 'unix_ms', 'unix_us', 'unix_ns'] as const;

export const SerialCsvSchema = Type.Object(
  {
    columns: Type.Array(NonEmpty('Column name: the field name of the value in that position.'), {
      minItems: 1,
      uniqueItems: true,
      description: 'Names of the columns, in order. Numeric cells become float fields, true/false booleans, others strings.',
    }),
    separator: withDefault(NonEmpty('Column separator (use "\\t" in double quotes for tabs).', { maxLength: 1 }), ','),
    time_column: Type.Optional(NonEmpty('Column holding the timestamp (one of columns); it is not stored as a field. Default: the time of receipt.')),
    time_format: Type.Optional(
      StringEnum(CSV_TIME_FORMATS, {
        description: 'Format of time_column: rfc3339, or epoch seconds (unix), milliseconds (unix_ms), microseconds (unix_us), nanoseconds (unix_ns). Required with time_column.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Settings for format: csv.' },
);

export const SerialRegexSchema = Type.Object(
  {
    pattern: NonEmpty('JavaScript regular expression matched against each line; every named group (?<name>…) becomes a field.', {
      examples: ['^T=(?<temperature>[-0-9.]+) H=(?<humidity>[0-9.]+)$'],
    }),
  },
  { additionalProperties: false, description: 'Settings for format: regex.' },
);

export const SerialInfluxSchema = Type.Object(
  {
    precision: withDefault(
      StringEnum(TIME_PRECISIONS, { description: 'Unit of the timestamps in the lines (as the InfluxDB write API precision). Lines without one get the time of receipt.' }),
      'ns',
    ),
  },
  { additionalProperties: false, description: 'Settings for format: influx.' },
);

export const SerialInputSchema = Type.Object(
  {
    type: ComponentType('serial', 'A sensor that writes lines of text to a serial port.'),
    port: NonEmpty('Serial device path.', { examples: ['/dev/ttyUSB0', '/dev/serial/by-id/usb-FTDI_FT232R-if00-port0'] }),
    baud_rate: withDefault(Type.Integer({ minimum: 1, description: 'Serial speed in bit/s.' }), 9600),
    parity: withDefault(StringEnum(['none', 'even', 'odd'] as const, { description: 'Serial parity.' }), 'none'),
    data_bits: withDefault(IntegerEnum([5, 6, 7, 8] as const, { description: 'Data bits per character.' }), 8),
    stop_bits: withDefault(IntegerEnum([1, 2] as const, { description: 'Stop bits.' }), 1),
    delimiter: withDefault(
      NonEmpty('End of a line (use double quotes for escapes: "\\r\\n"). CR and LF at either end of a line are removed, so "\\n" also reads CRLF devices.', {
        maxLength: 16,
      }),
      '\n',
    ),
    max_line_length: withDefault(
      Type.Integer({ minimum: 1, maximum: 1_048_576, description: 'Longest line in bytes, without its delimiter; a longer one is discarded up to the next delimiter and counted (too_long).' }),
      4096,
    ),
    format: StringEnum(SERIAL_FORMATS, {
      description: 'How a line decodes: csv (see csv), json (one object per line, see json), influx (line protocol, see influx), regex (see regex).',
    }),
    csv: Type.Optional(SerialCsvSchema),
    json: Type.Optional(JsonPayload()),
    influx: Type.Optional(SerialInfluxSchema),
    regex: Type.Optional(SerialRegexSchema),
    measurement: Measurement(),
    tags: Tags('Tags added to every point of this input.'),
  },
  { additionalProperties: false, description: 'A serial port read line by line.' },
);

export type SerialInputConfig = StaticDecode<typeof SerialInputSchema>;

/** Names of the named groups of a compiled regex (an empty-alternative probe always matches, listing every group). */
function namedGroups(re: RegExp): string[] {
  const probe = new RegExp(`(?:${re.source})|`, re.flags).exec('');
  return Object.keys(probe?.groups ?? {});
}

export const serialInput = defineComponent({
  type: 'serial',
  schema: SerialInputSchema,
  finish(cfg, ctx) {
    if (cfg.format === 'influx' && !unset(ctx.raw.measurement)) {
      ctx.error(['measurement'], 'format influx takes the measurement from each line; remove measurement', 'key');
    }
    if (unset(cfg.measurement)) cfg.measurement = ctx.id;
    // A single-quoted '\r\n' reaches us as backslash, r, backslash, n: never what a device sends.
    if (/\\[rnt0]/.test(cfg.delimiter)) {
      ctx.error(['delimiter'], `"${cfg.delimiter}" holds a backslash escape as text: write the delimiter in double quotes ("\\r\\n") so YAML turns it into control characters`);
    }
    for (const block of ['csv', 'json', 'influx', 'regex'] as const) {
      if (cfg[block] !== undefined && cfg.format !== block) ctx.error([block], `${block} settings apply only to format: ${block} (format is ${cfg.format})`, 'key');
    }
    if (cfg.format === 'csv') {
      if (cfg.csv === undefined) ctx.error(['csv'], 'format csv needs csv.columns', 'key');
      else {
        const { columns, time_column, time_format } = cfg.csv;
        if (time_column !== undefined && !columns.includes(time_column)) {
          ctx.error(['csv', 'time_column'], `"${time_column}" is not one of the columns (${columns.join(', ')})`);
        }
        if (time_column !== undefined && time_format === undefined) ctx.error(['csv', 'time_column'], 'time_column needs time_format (rfc3339, unix, unix_ms, unix_us or unix_ns)', 'key');
        if (time_format !== undefined && time_column === undefined) ctx.error(['csv', 'time_format'], 'time_format applies only with time_column', 'key');
        if (cfg.delimiter.includes(cfg.csv.separator)) {
          ctx.error(['csv', 'separator'], `the separator ${JSON.stringify(cfg.csv.separator)} is part of the line delimiter ${JSON.stringify(cfg.delimiter)}`);
        }
      }
    }
    if (cfg.format === 'regex') {
      if (cfg.regex === undefined) ctx.error(['regex'], 'format regex needs regex.pattern', 'key');
      else {
        let re: RegExp | undefined;
        try {
          re = new RegExp(cfg.regex.pattern);
        } catch (e) {
          ctx.error(['regex', 'pattern'], `does not compile: ${(e as Error).message}`);
        }
        if (re && namedGroups(re).length === 0) ctx.error(['regex', 'pattern'], 'has no named groups: write (?<field>…) for each value to store');
      }
    }
  },
});
