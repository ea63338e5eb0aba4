import type { FC } from 'hono/jsx';
import type { GroupView } from '../../server/services/groups.js';
import type { CsvProblem } from '../../server/services/groups-csv.js';
import type { ImageView } from '../../server/services/images.js';
import { ConfirmForm, DataTable, LinkCell, describedBy, Field, fieldState } from '../components.js';
import { CsrfField, FieldError } from '../layout.js';

export interface GroupFormValues {
  name: string;
  licenseKey: string;
  primary: boolean;
  imageId: string;
}

export const GroupsPage: FC<{
  groups: GroupView[];
  images: ImageView[];
  values: GroupFormValues;
  fieldErrors?: Record<string, string>;
  csvProblems?: CsvProblem[] | undefined;
}> = ({ groups, images, values, fieldErrors = {}, csvProblems }) => (
  <>
    <p class="muted">
      User groups (sublicenses) as in the Parallels Management Portal. Each group gets at most one golden image; the
      group marked “primary license key” stands for everyone activated with the primary key. Names are unique regardless
      of case.
    </p>
    <DataTable
      rows={groups}
      empty={<p class="empty">No groups yet. Create the first one below, or import them from a CSV file.</p>}
      columns={[
        { head: 'Name', cell: (g) => <LinkCell href={`/admin/groups/${g.id}`}>{g.name}</LinkCell> },
        {
          head: 'Golden image',
          cell: (g) => (
            <td>
              {g.image ? <a href={`/admin/images/${g.image.id}`}>{g.image.name}</a> : <span class="muted">none</span>}
            </td>
          ),
        },
        { head: 'License key', narrow: true, cell: (g) => <td class="hide-narrow mono">{g.licenseKey ?? ''}</td> },
        { head: 'Primary', cell: (g) => <td>{g.primary ? 'yes' : ''}</td> },
      ]}
    />
    <h2>New group</h2>
    <GroupForm action="/admin/groups" values={values} images={images} fieldErrors={fieldErrors} submit="Create group" />
    <GroupsCsvSection hasGroups={groups.length > 0} problems={csvProblems} />
  </>
);

/** Export and import as CSV: the import form posts the file as a streamed multipart body (CSRF token in the query, like uploads). */
const GroupsCsvSection: FC<{ hasGroups: boolean; problems: CsvProblem[] | undefined }> = ({ hasGroups, problems }) => (
  <section aria-labelledby="csv-heading">
    <h2 id="csv-heading">Export and import (CSV)</h2>
    <p class="muted">
      Columns <code>name,license_key,primary,image</code> (image by its name; primary <code>yes</code> or{' '}
      <code>no</code>). An import creates the groups that are missing and updates the others to match the file; groups
      not in the file stay as they are. It changes nothing unless every line is right.
    </p>
    {problems && problems.length > 0 && (
      <div class="alert" role="alert" id="csv-problems">
        <p>
          <strong>Nothing was imported.</strong> Fix these lines and import the file again:
        </p>
        <ul>
          {problems.map((p) => (
            <li>
              Line {p.line}
              {p.column ? ` (${p.column})` : ''}: {p.message}
            </li>
          ))}
        </ul>
      </div>
    )}
    <div class="card">
      {hasGroups ? (
        <p>
          <a class="button secondary" href="/admin/groups.csv" download>
            Export groups as CSV
          </a>
        </p>
      ) : (
        <p class="muted">Nothing to export yet.</p>
      )}
      <form method="post" action="/admin/groups/import" enctype="multipart/form-data" class="stack">
        {/* First in the form, so the server reads it before the file (never in the URL). */}
        <CsrfField />
        <label class="check" for="csv-dry-run">
          <input id="csv-dry-run" name="dryRun" type="checkbox" value="on" /> Only check the file (change nothing)
        </label>
        <label for="csv-file">CSV file</label>
        <input id="csv-file" name="file" type="file" accept=".csv,text/csv" required />
        <div class="actions">
          <button type="submit" class="secondary">
            Import groups
          </button>
        </div>
      </form>
    </div>
  </section>
);

export const GroupEditPage: FC<{
  group: GroupView;
  images: ImageView[];
  values: GroupFormValues;
  fieldErrors?: Record<string, string>;
}> = ({ group, images, values, fieldErrors = {} }) => (
  <>
    <GroupForm
      action={`/admin/groups/${group.id}`}
      values={values}
      images={images}
      fieldErrors={fieldErrors}
      submit="Save changes"
    />
    <div class="actions">
      {group.image && (
        <a
          class="button secondary"
          href={`/admin/groups/${group.id}/unassign?back=${encodeURIComponent(`/admin/groups/${group.id}`)}`}
        >
          Remove golden image…
        </a>
      )}
      <a class="button danger" href={`/admin/groups/${group.id}/delete`}>
        Delete group…
      </a>
    </div>
  </>
);

/** Asks before a group goes (like deleting a golden image): names what it had and what is left to do in the portal. */
export const GroupDeletePage: FC<{ group: GroupView }> = ({ group }) => (
  <>
    <div class="card">
      <p>Deleting a group cannot be undone.</p>
      <ul>
        <li>
          {group.image ? (
            <>
              Its golden image <a href={`/admin/images/${group.image.id}`}>{group.image.name}</a> stays; only this
              group’s assignment goes.
            </>
          ) : (
            'It has no golden image.'
          )}
        </li>
        {group.primary && <li>It holds the primary license key; no group will have it afterwards.</li>}
        {group.licenseKey && <li>Its license key is forgotten here.</li>}
        <li>Delete the group in the Parallels Management Portal too.</li>
      </ul>
      <ConfirmForm
        action={`/admin/groups/${group.id}/delete`}
        hidden={{ confirm: 'yes' }}
        cancel={`/admin/groups/${group.id}`}
      >
        Delete group {group.name}
      </ConfirmForm>
    </div>
  </>
);

/** Asks before a group loses its golden image; `back` is where both answers lead. */
export const GroupUnassignPage: FC<{ group: GroupView; back: string }> = ({ group, back }) => (
  <>
    <div class="card">
      {group.image ? (
        <>
          <p>
            Group <strong>{group.name}</strong> will have no golden image. Macs in this group keep what they have; make
            the same change in the Management Portal so that they are not offered <strong>{group.image.name}</strong>{' '}
            any more.
          </p>
          <ConfirmForm action={`/admin/groups/${group.id}/unassign`} hidden={{ confirm: 'yes', back }} cancel={back}>
            Remove {group.image.name} from {group.name}
          </ConfirmForm>
        </>
      ) : (
        <p>
          Group {group.name} has no golden image. <a href={back}>Back</a>
        </p>
      )}
    </div>
  </>
);

const GroupForm: FC<{
  action: string;
  values: GroupFormValues;
  images: ImageView[];
  fieldErrors: Record<string, string>;
  submit: string;
}> = ({ action, values, images, fieldErrors, submit }) => (
  <form method="post" action={action} class="card stack" novalidate>
    <CsrfField />
    <Field id="group-name" label="Name" required maxlength={100} {...fieldState(values, fieldErrors, 'name')} />
    <Field
      id="group-license"
      label="License key (optional)"
      maxlength={200}
      class="mono"
      {...fieldState(values, fieldErrors, 'licenseKey')}
    />
    <label class="check" for="group-primary">
      <input id="group-primary" name="primary" type="checkbox" value="on" checked={values.primary} /> Primary license
      key (at most one group)
    </label>
    <FieldError id="group-primary" message={fieldErrors.primary} />
    <label for="group-image">Golden image</label>
    <select id="group-image" name="imageId" {...describedBy('group-image', fieldErrors.imageId)}>
      <option value="">— none —</option>
      {images.map((i) => (
        <option value={String(i.id)} selected={String(i.id) === values.imageId}>
          {i.name}
        </option>
      ))}
    </select>
    <FieldError id="group-image" message={fieldErrors.imageId} />
    <div class="actions">
      <button type="submit">{submit}</button>
    </div>
  </form>
);
