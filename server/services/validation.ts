/** Turns zod failures into one VALIDATION_FAILED error that names every bad field. */
import { z } from 'zod';
import { constraintViolation } from '../db/errors.js';
import { AppError } from '../errors.js';

export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw validationFailed(result.error, what);
}

/** The VALIDATION_FAILED error for a zod failure (the API's request validation answers with the same one). */
export function validationFailed(error: z.ZodError, what: string): AppError {
  const problems = error.issues.map((issue) => {
    const field = issue.path.length > 0 ? issue.path.join('.') : what;
    return { field, message: issue.message };
  });
  return new AppError(
    'VALIDATION_FAILED',
    `invalid ${what}: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`,
    { fields: problems },
  );
}

/** A name shown to people: trimmed, 1 to max characters, no control characters. */
export function displayName(max: number) {
  return (
    z
      .string({ error: 'must be a string' })
      .trim()
      .min(1, 'must not be empty')
      .max(max, `must be at most ${max} characters`)
      // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
      .refine((v) => !/[\u0000-\u001f\u007f]/.test(v), 'must not contain control characters')
  );
}

export const sha256Field = z
  .string({ error: 'must be a string' })
  .trim()
  .toLowerCase()
  .regex(/^[0-9a-f]{64}$/, 'must be 64 hexadecimal digits');

/** Path ids: positive integers only. */
export function parseId(text: string, what: string): number {
  if (!/^[1-9]\d{0,15}$/.test(text)) throw new AppError('NOT_FOUND', `no ${what} with id ${JSON.stringify(text)}`);
  return Number(text);
}

/**
 * Runs a write whose rules the code checked first but the schema enforces
 * anyway (a concurrent writer can still trip them): a unique violation
 * becomes the caller's 409, any other constraint a generic CONFLICT.
 */
export async function guardConstraints<T>(fn: () => Promise<T>, onUnique: (detail: string) => AppError): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const violation = constraintViolation(err);
    if (violation?.kind === 'unique') throw onUnique(violation.detail);
    if (violation) throw new AppError('CONFLICT', `the change breaks a rule of the data model (${violation.kind})`);
    throw err;
  }
}
