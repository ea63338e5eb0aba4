/** The building blocks the admin pages share: tables with their empty state, labelled fields, small post forms. */
import type { Child, FC } from 'hono/jsx';
import type { JSX } from 'hono/jsx/jsx-runtime';
import { CsrfField, FieldError } from './layout.js';

/** One column of a DataTable: its header, and the whole `<td>` of a row (so each cell keeps its own attributes). */
export interface Column<T> {
  head: Child;
  /** Hides the header on narrow screens (its cells say so themselves). */
  narrow?: boolean;
  cell: (row: T) => Child;
}

/** A scrollable table, or `empty` when there are no rows. */
export function DataTable<T>(props: {
  rows: T[];
  columns: Array<Column<T>>;
  empty?: Child;
  id?: string;
  /** A caption for screen readers only. */
  caption?: string;
  /** Attributes of each row's `<tr>` (data-* for scripts). */
  rowAttrs?: (row: T) => Record<string, string>;
  /** Shown under the table, inside its scrolling box. */
  after?: Child;
}): JSX.Element {
  const { rows, columns } = props;
  if (rows.length === 0) return <>{props.empty ?? null}</>;
  return (
    <div class="table-wrap">
      <table id={props.id}>
        {props.caption && <caption class="visually-hidden">{props.caption}</caption>}
        <thead>
          <tr>
            {columns.map((c) => (
              <th scope="col" class={c.narrow ? 'hide-narrow' : undefined}>
                {c.head}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr {...props.rowAttrs?.(row)}>{columns.map((c) => c.cell(row))}</tr>
          ))}
        </tbody>
      </table>
      {props.after}
    </div>
  );
}

type InputAttrs = Omit<JSX.IntrinsicElements['input'], 'id' | 'name' | 'type'>;

/** The aria attributes that tie a field to its error message (and to a hint, when it has one). */
export function describedBy(id: string, error: string | undefined, hint?: string) {
  const ids = [error ? `${id}-error` : undefined, hint].filter(Boolean).join(' ');
  return { 'aria-invalid': error ? 'true' : undefined, 'aria-describedby': ids || undefined };
}

/** A label, its input (named like its id unless told, text unless told) and the input's error, linked for screen readers. */
export const Field: FC<
  InputAttrs & { id: string; name?: string; type?: string; label: Child; error?: string | undefined; hint?: string }
> = ({ id, name = id, type = 'text', label, error, hint, ...attrs }) => (
  <>
    <label for={id}>{label}</label>
    <input id={id} name={name} type={type} {...attrs} {...describedBy(id, error, hint)} />
    <FieldError id={id} message={error} />
  </>
);

type TextKeys<V> = { [K in keyof V]: V[K] extends string ? K : never }[keyof V] & string;

/** A text field's name, the value the form is re-shown with and its error: spread into a Field. */
export function fieldState<V extends object, K extends TextKeys<V>>(
  values: V,
  errors: Record<string, string>,
  name: K,
): { name: K; value: string; error: string | undefined } {
  return { name, value: values[name] as string, error: errors[name] };
}

/** A cell that links to the row's own page. */
export const LinkCell: FC<{ href: string; children: Child }> = ({ href, children }) => (
  <td>
    <a href={href}>{children}</a>
  </td>
);

/** A value of a drop-down and the words shown for it. */
export type Choice = [value: string, label: Child];

/** A drop-down of a filter form: "any" first, then the given choices. */
export const FilterSelect: FC<{
  id: string;
  name: string;
  label: string;
  /** The first choice, which filters nothing. */
  any?: string;
  choices: Choice[];
  selected: string | undefined;
}> = ({ id, name, label, any = 'any', choices, selected }) => (
  <div>
    <label for={id}>{label}</label>
    <select id={id} name={name}>
      <option value="">{any}</option>
      {choices.map(([value, text]) => (
        <option value={value} selected={selected === value}>
          {text}
        </option>
      ))}
    </select>
  </div>
);

/** One button that posts (with the CSRF field) to `action`, laid out inline. */
export const PostButton: FC<{ action: string; kind?: string; label?: string; children: Child }> = ({
  action,
  kind = 'secondary',
  label,
  children,
}) => (
  <form method="post" action={action} class="inline">
    <CsrfField />
    <button type="submit" class={kind} aria-label={label}>
      {children}
    </button>
  </form>
);

/** The last step of a confirmation page: the dangerous button, with `hidden` fields, and a way back. */
export const ConfirmForm: FC<{ action: string; hidden?: Record<string, string>; cancel: string; children: Child }> = ({
  action,
  hidden = {},
  cancel,
  children,
}) => (
  <form method="post" action={action} class="actions">
    <CsrfField />
    {Object.entries(hidden).map(([name, value]) => (
      <input type="hidden" name={name} value={value} />
    ))}
    <button type="submit" class="danger">
      {children}
    </button>
    <a href={cancel}>Cancel</a>
  </form>
);
