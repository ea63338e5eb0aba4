/**
 * Groups: list and create, edit, the CSV export and import, and the two
 * confirmations (remove the assignment, delete the group). Mounted at the
 * console's root because the export lives beside them at /groups.csv.
 */
import { Hono, type Context } from 'hono';
import { toAppError } from '../../server/errors.js';
import {
  createGroup,
  deleteGroup,
  getGroup,
  listGroups,
  updateGroup,
  type GroupView,
} from '../../server/services/groups.js';
import { applyGroupsCsv, exportGroupsCsv, type CsvProblem } from '../../server/services/groups-csv.js';
import { listImages } from '../../server/services/images.js';
import { parseId } from '../../server/services/validation.js';
import { baseOf, csrfOf, done, type WebContext, type WebDeps, type WebEnv } from '../env.js';
import {
  EMPTY_GROUP_VALUES,
  field,
  formError,
  groupInput,
  groupValues,
  groupViewValues,
  receiveGroupsCsv,
  safeBack,
  type FormError,
} from '../forms.js';
import {
  GroupDeletePage,
  GroupEditPage,
  GroupsPage,
  GroupUnassignPage,
  type GroupFormValues,
} from '../pages/groups.js';

const active = '/admin/groups';

/** The flash after a CSV import (post/redirect/get): built from counts only, never from request text. */
function importFlash(c: Context): string | undefined {
  const kind = c.req.query('done');
  if (kind !== 'groups-imported' && kind !== 'groups-checked') return undefined;
  const n = (key: string) => Number(/^\d{1,6}$/.test(c.req.query(key) ?? '') ? c.req.query(key) : 0);
  const [created, updated, unchanged] = [n('created'), n('updated'), n('unchanged')];
  return kind === 'groups-checked'
    ? `The file is fine: importing it would create ${created}, update ${updated} and leave ${unchanged} group(s) unchanged. Nothing was changed.`
    : `Groups imported: ${created} created, ${updated} updated, ${unchanged} unchanged.`;
}

export function groupRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();

  const listPage = async (
    c: WebContext,
    values: GroupFormValues,
    error?: FormError & { csvProblems?: CsvProblem[] | undefined },
  ) => {
    c.status(error?.status ?? 200);
    return c.render(
      <GroupsPage
        groups={await listGroups(deps)}
        images={await listImages(deps, baseOf(c))}
        values={values}
        fieldErrors={error?.fields}
        csvProblems={error?.csvProblems}
      />,
      { title: 'Groups', active, error: error?.message, flash: importFlash(c) },
    );
  };
  const editPage = async (c: WebContext, group: GroupView, values: GroupFormValues, error?: FormError) => {
    c.status(error?.status ?? 200);
    return c.render(
      <GroupEditPage
        group={group}
        images={await listImages(deps, baseOf(c))}
        values={values}
        fieldErrors={error?.fields}
      />,
      {
        title: `Group ${group.name}`,
        active,
        error: error?.message,
      },
    );
  };

  app.get('/groups', (c) => listPage(c, { ...EMPTY_GROUP_VALUES }));
  app.get('/groups.csv', async (c) => {
    c.header('Content-Type', 'text/csv; charset=utf-8; header=present');
    c.header(
      'Content-Disposition',
      `attachment; filename="goldmirror-groups-${new Date().toISOString().slice(0, 10)}.csv"`,
    );
    return c.body(await exportGroupsCsv(deps));
  });
  app.post('/groups/import', async (c) => {
    try {
      const { file, dryRun } = await receiveGroupsCsv(c, csrfOf(c));
      const report = await applyGroupsCsv(deps, c.get('actor'), file, { dryRun });
      const counts = `created=${report.created.length}&updated=${report.updated.length}&unchanged=${report.unchanged.length}`;
      return c.redirect(`/admin/groups?done=${dryRun ? 'groups-checked' : 'groups-imported'}&${counts}`, 303);
    } catch (err) {
      const e = formError(err);
      const problems = toAppError(err).details.problems as CsvProblem[] | undefined;
      if (problems) c.header('Connection', 'close');
      const message = problems
        ? `Nothing was imported: the file has ${problems.length === 1 ? 'a problem' : `${problems.length} problems`} (listed below).`
        : e.message;
      return listPage(c, { ...EMPTY_GROUP_VALUES }, { message, fields: {}, status: e.status, csvProblems: problems });
    }
  });
  app.post('/groups', async (c) => {
    const values = groupValues(await c.req.parseBody());
    try {
      await createGroup(deps, c.get('actor'), groupInput(values));
      return done(c, '/admin/groups', 'group-created');
    } catch (err) {
      return listPage(c, values, formError(err));
    }
  });
  app.get('/groups/:id', async (c) => {
    const group = await getGroup(deps, parseId(c.req.param('id'), 'group'));
    return editPage(c, group, groupViewValues(group));
  });
  app.post('/groups/:id', async (c) => {
    const id = parseId(c.req.param('id'), 'group');
    const group = await getGroup(deps, id);
    const values = groupValues(await c.req.parseBody());
    try {
      await updateGroup(deps, c.get('actor'), id, groupInput(values));
      return done(c, '/admin/groups', 'group-saved');
    } catch (err) {
      return editPage(c, group, values, formError(err));
    }
  });
  // Removing an assignment and deleting a group ask first (a GET page), as deleting an image does;
  // a post without the page's confirm=yes (an old form, another page's Remove button) is sent there.
  app.get('/groups/:id/unassign', async (c) => {
    const group = await getGroup(deps, parseId(c.req.param('id'), 'group'));
    return c.render(<GroupUnassignPage group={group} back={safeBack(c.req.query('back'), group.id)} />, {
      title: `Remove ${group.image?.name ?? 'the golden image'} from ${group.name}?`,
      active,
      flash: null,
    });
  });
  app.post('/groups/:id/unassign', async (c) => {
    const id = parseId(c.req.param('id'), 'group');
    const form = await c.req.parseBody();
    const back = safeBack(field(form, 'back'), id);
    if (form.confirm !== 'yes') return c.redirect(`/admin/groups/${id}/unassign?back=${encodeURIComponent(back)}`, 303);
    await updateGroup(deps, c.get('actor'), id, { imageId: null });
    return done(c, back, 'group-unassigned');
  });
  app.get('/groups/:id/delete', async (c) => {
    const group = await getGroup(deps, parseId(c.req.param('id'), 'group'));
    return c.render(<GroupDeletePage group={group} />, { title: `Delete group ${group.name}?`, active, flash: null });
  });
  app.post('/groups/:id/delete', async (c) => {
    const id = parseId(c.req.param('id'), 'group');
    const form = await c.req.parseBody();
    if (form.confirm !== 'yes') return c.redirect(`/admin/groups/${id}/delete`, 303);
    await deleteGroup(deps, c.get('actor'), id);
    return done(c, '/admin/groups', 'group-deleted');
  });
  return app;
}
