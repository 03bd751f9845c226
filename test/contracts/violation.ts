// A contract check and the error it throws: the rule it states and the implementation that broke it,
// so a failure reads "simulator breaks «stop releases every handle»: 1 × Timeout" and a test of the
// suite itself can assert which rule caught a deliberately broken implementation.

export interface ContractCheck {
  /** The promise, in words. */
  readonly rule: string;
  /** Throws a ContractViolation when the implementation breaks the rule. */
  run(): Promise<void>;
}

export class ContractViolation extends Error {
  override readonly name = 'ContractViolation';
  constructor(
    readonly subject: string,
    readonly rule: string,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(`${subject} breaks «${rule}»: ${detail}`, options);
  }
}

/** A check whose every failure (an assertion, or anything thrown by the implementation) names its rule. */
export function checked(subject: string, rule: string, body: () => Promise<void>): ContractCheck {
  return {
    rule,
    async run() {
      try {
        await body();
      } catch (err) {
        if (err instanceof ContractViolation) throw err;
        throw new ContractViolation(subject, rule, err instanceof Error ? err.message : String(err), { cause: err });
      }
    },
  };
}

export function assert(condition: boolean, detail: string): asserts condition {
  if (!condition) throw new Error(detail);
}
