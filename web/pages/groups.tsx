import type { FC } from 'hono/jsx';
import type { GroupView } from '../../server/services/groups.js';
import type { ImageView } from '../../server/services/images.js';
import { CsrfField, FieldError, Layout } from '../layout.js';

interface Common {
  user: string;
  csrf: string;
  flash?: string | undefined;
  error?: string | undefined;
}

export interface GroupFormValues {
  name: string;
  licenseKey: string;
  primary: boolean;
  imageId: string;
}

export const GroupsPage: FC<Common & { groups: GroupView[]; images: ImageView[]; values: GroupFormValues; fieldErrors?: Record<string, string> }> = ({
  groups,
  images,
  values,
  fieldErrors = {},
  ...c
}) => (
  <Layout title="Groups" user={c.user} csrf={c.csrf} active="/admin/groups" flash={c.flash} error={c.error}>
    <p class="muted">
      User groups (sublicenses) as in the Parallels Management Portal. Each group gets at most one golden image; the group marked
      “primary license key” stands for everyone activated with the primary key.
    </p>
    {groups.length === 0 ? (
      <p class="muted">No groups yet.</p>
    ) : (
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Golden image</th>
              <th scope="col" class="hide-narrow">
                License key
              </th>
              <th scope="col">Primary</th>
            </tr>
          </thead>
          <tbody>
            {groups.map((g) => (
              <tr>
                <td>
                  <a href={`/admin/groups/${g.id}`}>{g.name}</a>
                </td>
                <td>{g.image ? <a href={`/admin/images/${g.image.id}`}>{g.image.name}</a> : <span class="muted">none</span>}</td>
                <td class="hide-narrow mono">{g.licenseKey ?? ''}</td>
                <td>{g.primary ? 'yes' : ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    )}
    <h2>New group</h2>
    <GroupForm action="/admin/groups" csrf={c.csrf} values={values} images={images} fieldErrors={fieldErrors} submit="Create group" />
  </Layout>
);

export const GroupEditPage: FC<Common & { group: GroupView; images: ImageView[]; values: GroupFormValues; fieldErrors?: Record<string, string> }> = ({
  group,
  images,
  values,
  fieldErrors = {},
  ...c
}) => (
  <Layout title={`Group ${group.name}`} user={c.user} csrf={c.csrf} active="/admin/groups" flash={c.flash} error={c.error}>
    <GroupForm action={`/admin/groups/${group.id}`} csrf={c.csrf} values={values} images={images} fieldErrors={fieldErrors} submit="Save changes" />
    <form method="post" action={`/admin/groups/${group.id}/delete`} class="actions">
      <CsrfField token={c.csrf} />
      <button type="submit" class="danger">
        Delete group {group.name}
      </button>
    </form>
  </Layout>
);

const GroupForm: FC<{
  action: string;
  csrf: string;
  values: GroupFormValues;
  images: ImageView[];
  fieldErrors: Record<string, string>;
  submit: string;
}> = ({ action, csrf, values, images, fieldErrors, submit }) => (
  <form method="post" action={action} class="card stack" novalidate>
    <CsrfField token={csrf} />
    <label for="group-name">Name</label>
    <input id="group-name" name="name" type="text" required maxlength={100} value={values.name} aria-invalid={fieldErrors.name ? 'true' : undefined} aria-describedby={fieldErrors.name ? 'group-name-error' : undefined} />
    <FieldError id="group-name" message={fieldErrors.name} />
    <label for="group-license">License key (optional)</label>
    <input id="group-license" name="licenseKey" type="text" maxlength={200} value={values.licenseKey} class="mono" aria-invalid={fieldErrors.licenseKey ? 'true' : undefined} aria-describedby={fieldErrors.licenseKey ? 'group-license-error' : undefined} />
    <FieldError id="group-license" message={fieldErrors.licenseKey} />
    <label class="check" for="group-primary">
      <input id="group-primary" name="primary" type="checkbox" value="on" checked={values.primary} /> Primary license key (at most one group)
    </label>
    <FieldError id="group-primary" message={fieldErrors.primary} />
    <label for="group-image">Golden image</label>
    <select id="group-image" name="imageId" aria-invalid={fieldErrors.imageId ? 'true' : undefined} aria-describedby={fieldErrors.imageId ? 'group-image-error' : undefined}>
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
