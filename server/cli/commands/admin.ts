/** CLI for scripts: golden images, groups, API tokens and the admin password, each with --json. */
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { AppError } from '../../errors.js';
import { cliActor } from '../../services/audit.js';
import { createApiToken, listApiTokens, resetPassword, revokeApiToken, TOKEN_SCOPES } from '../../services/auth.js';
import { createGroup, findGroupRef, listGroups, updateGroup, type GroupView } from '../../services/groups.js';
import { applyGroupsCsv, exportGroupsCsv, readGroupsCsv } from '../../services/groups-csv.js';
import {
  createImage,
  deleteImage,
  findImageRef,
  getImage,
  listImages,
  portalValues,
  type ImageView,
} from '../../services/images.js';
import { confirmPortalValues } from '../../services/portal-changes.js';
import type { PublicAddress } from '../../services/settings.js';
import { cliPublicAddress, NOT_READY } from '../public-address.js';
import { FLAG, JSON_FLAG, STRING, defineCommand } from '../context.js';
import { printJson, printLine, table } from '../output.js';

function printImage(view: ImageView, address: PublicAddress): void {
  const portal = portalValues(view, address);
  printLine(`golden image ${view.id}: ${view.name}`);
  if (view.description) printLine(`description: ${view.description}`);
  for (const [, a] of Object.entries(portal.architectures)) {
    printLine(`${a.label}: ${a.enabled ? 'enabled' : 'disabled'}`);
    if (a.enabled) {
      printLine(`  Download URL: ${a.downloadUrl ?? (address.url === null ? NOT_READY : '-')}`);
      printLine(`  SHA-256:      ${a.sha256 ?? '-'}`);
    }
  }
  printLine(
    `groups: ${view.groups.map((g) => (g.primary ? `${g.name} (primary license key)` : g.name)).join(', ') || 'none'}`,
  );
  for (const problem of portal.problems) printLine(`warning: ${problem}`);
  if (portal.pendingChange) {
    printLine('portal values changed — update the portal, then: goldmirror image portal-updated ' + String(view.id));
    for (const ch of portal.pendingChange.changes)
      printLine(`  ${ch.label} ${ch.field}: ${String(ch.from ?? '-')} → ${String(ch.to ?? '-')}`);
  }
}

const IMAGE_USAGE =
  'goldmirror image create NAME [--description TEXT] [--arm64 SHA256] [--x86_64 SHA256] [--json]\n' +
  '       goldmirror image list|show NAME_OR_ID|delete NAME_OR_ID [--json]\n' +
  '       goldmirror image portal-updated NAME_OR_ID [--json]   (after copying changed values into the portal)';

export const imageCommand = defineCommand({
  summary: 'manage golden images (create, list, show, delete, portal-updated)',
  usage: IMAGE_USAGE,
  subcommands: ['create', 'list', 'show', 'delete', 'portal-updated'],
  options: { ...JSON_FLAG, description: STRING, arm64: STRING, x86_64: STRING },
  async run(ctx, { values, positionals, subcommand: name }) {
    // Only this command prints links, so only it resolves (and comments on) the public address.
    return ctx.withRuntime(async (runtime) => {
      const address = await cliPublicAddress(runtime);
      const deps = runtime;
      const baseUrl = address.url;
      if (name === 'list') {
        if (positionals.length) throw new AppError('USAGE', 'image list takes no arguments');
        const images = await listImages(deps, baseUrl);
        if (values.json) return printJson(images);
        if (!images.length)
          return printLine('no golden images yet; create one with: goldmirror image create NAME --arm64 SHA256');
        return printLine(
          table([
            ['ID', 'NAME', 'APPLE SILICON', 'INTEL', 'GROUPS'],
            ...images.map((i) => [
              String(i.id),
              i.name,
              i.arm64.enabled ? (i.arm64.sha256 ?? '').slice(0, 12) : '-',
              i.x86_64.enabled ? (i.x86_64.sha256 ?? '').slice(0, 12) : '-',
              i.groups.map((g) => g.name).join(', '),
            ]),
          ]),
        );
      }
      if (positionals.length !== 1)
        throw new AppError('USAGE', `image ${name} takes exactly one NAME${name === 'create' ? '' : '_OR_ID'}`);
      const ref = positionals[0]!;
      if (name === 'create') {
        const arch = (sha: string | undefined) => (sha === undefined ? undefined : { enabled: true, sha256: sha });
        const view = await createImage(
          deps,
          cliActor,
          { name: ref, description: values.description, arm64: arch(values.arm64), x86_64: arch(values.x86_64) },
          baseUrl,
        );
        return values.json ? printJson(view) : printImage(view, address);
      }
      const row = await findImageRef(deps, ref);
      if (name === 'show') {
        const view = await getImage(deps, row.id, baseUrl);
        return values.json ? printJson({ ...view, portal: portalValues(view, address) }) : printImage(view, address);
      }
      if (name === 'portal-updated') {
        const changed = await confirmPortalValues(deps, cliActor, row.id, baseUrl, undefined);
        const view = await getImage(deps, row.id, baseUrl);
        if (values.json) return printJson(portalValues(view, address));
        return printLine(
          changed
            ? `marked the portal values of ${view.name} as updated`
            : `nothing to do: the portal values of ${view.name} had not changed`,
        );
      }
      const result = await deleteImage(deps, cliActor, row.id, baseUrl);
      if (values.json) return printJson(result);
      printLine(`deleted golden image ${result.deleted.name}`);
      if (result.groupsLeftWithoutImage.length) {
        printLine(
          `these groups now have no golden image: ${result.groupsLeftWithoutImage.map((g) => g.name).join(', ')}`,
        );
      }
    });
  },
});

const GROUP_USAGE =
  'goldmirror group create NAME [--license-key KEY] [--primary] [--image NAME_OR_ID] [--json]\n' +
  '       goldmirror group list [--json]\n' +
  '       goldmirror group assign GROUP IMAGE_NAME_OR_ID|--none [--json]\n' +
  '       goldmirror group export [FILE.csv|-]\n' +
  '       goldmirror group import FILE.csv|- [--dry-run] [--json]';

function groupLine(g: GroupView): string[] {
  return [String(g.id), g.name, g.primary ? 'yes' : '', g.licenseKey ?? '', g.image?.name ?? '-'];
}

export const groupCommand = defineCommand({
  summary: 'manage user groups (create, list, assign an image, CSV export and import)',
  usage: GROUP_USAGE,
  subcommands: ['create', 'list', 'assign', 'export', 'import'],
  options: { ...JSON_FLAG, 'license-key': STRING, primary: FLAG, image: STRING, none: FLAG, 'dry-run': FLAG },
  async run(ctx, { values, positionals, subcommand: name }) {
    return ctx.withRuntime(async (runtime) => {
      const deps = runtime;
      if (name === 'export') {
        if (positionals.length > 1)
          throw new AppError('USAGE', 'group export takes at most one FILE (- or none: standard output)');
        const csv = await exportGroupsCsv(deps);
        const file = positionals[0];
        if (file === undefined || file === '-') return void process.stdout.write(csv);
        await writeFile(file, csv);
        const count = csv.split('\r\n').length - 2;
        return void process.stderr.write(`wrote ${count} group${count === 1 ? '' : 's'} to ${file}\n`);
      }
      if (name === 'import') {
        if (positionals.length !== 1)
          throw new AppError('USAGE', 'group import takes exactly one FILE.csv (- for standard input)');
        const file = positionals[0]!;
        const source = file === '-' ? process.stdin : createReadStream(file);
        const report = await applyGroupsCsv(deps, cliActor, await readGroupsCsv(source as AsyncIterable<Buffer>), {
          dryRun: values['dry-run'],
        });
        if (values.json) return printJson(report);
        const list = (names: string[]) => (names.length ? `: ${names.join(', ')}` : '');
        printLine(`${report.dryRun ? 'would create' : 'created'} ${report.created.length}${list(report.created)}`);
        printLine(`${report.dryRun ? 'would update' : 'updated'} ${report.updated.length}${list(report.updated)}`);
        printLine(`unchanged ${report.unchanged.length}`);
        return;
      }
      if (name === 'list') {
        const groups = await listGroups(deps);
        if (values.json) return printJson(groups);
        if (!groups.length) return printLine('no groups yet; create one with: goldmirror group create NAME');
        return printLine(table([['ID', 'NAME', 'PRIMARY', 'LICENSE KEY', 'IMAGE'], ...groups.map(groupLine)]));
      }
      if (name === 'create') {
        if (positionals.length !== 1) throw new AppError('USAGE', 'group create takes exactly one NAME');
        const imageId = values.image !== undefined ? (await findImageRef(deps, values.image)).id : undefined;
        const view = await createGroup(deps, cliActor, {
          name: positionals[0],
          licenseKey: values['license-key'],
          primary: values.primary,
          imageId,
        });
        return values.json
          ? printJson(view)
          : printLine(`created group ${view.id}: ${view.name}${view.image ? ` → ${view.image.name}` : ''}`);
      }
      const expected = values.none ? 1 : 2;
      if (positionals.length !== expected)
        throw new AppError('USAGE', 'usage: group assign GROUP IMAGE, or group assign GROUP --none');
      const group = await findGroupRef(deps, positionals[0]!);
      const imageId = values.none ? null : (await findImageRef(deps, positionals[1]!)).id;
      const view = await updateGroup(deps, cliActor, group.id, { imageId });
      if (values.json) return printJson(view);
      printLine(view.image ? `group ${view.name} → ${view.image.name}` : `group ${view.name} has no golden image now`);
    });
  },
});

const TOKEN_USAGE = `goldmirror token create NAME [--scope ${TOKEN_SCOPES.join('|')}] | revoke NAME | list [--json]`;

export const tokenCommand = defineCommand({
  summary: 'API tokens for automation (Authorization: Bearer …), each with a scope',
  usage: TOKEN_USAGE,
  subcommands: ['create', 'revoke', 'list'],
  options: { ...JSON_FLAG, scope: STRING },
  async run(ctx, { values, positionals, subcommand: name }) {
    if (values.scope !== undefined && name !== 'create') throw new AppError('USAGE', '--scope goes with token create');
    return ctx.withRuntime(async (runtime) => {
      if (name === 'list') {
        const tokens = await listApiTokens(runtime);
        if (values.json) return printJson(tokens);
        return printLine(
          tokens.length
            ? table([
                ['NAME', 'SCOPE', 'CREATED', 'LAST USED'],
                ...tokens.map((t) => [t.name, t.scope, t.createdAt, t.lastUsedAt ?? 'never']),
              ])
            : 'no API tokens',
        );
      }
      if (positionals.length !== 1) throw new AppError('USAGE', `token ${name} takes exactly one NAME`);
      if (name === 'create') {
        const created = await createApiToken(runtime, cliActor, positionals[0]!, values.scope ?? 'admin');
        // The token alone on the last line, so scripts can take it with `tail -n 1`.
        process.stderr.write(`created API token ${created.name} with scope ${created.scope}; it is shown only once:\n`);
        return printLine(created.token);
      }
      await revokeApiToken(runtime, cliActor, positionals[0]!);
      printLine(`revoked API token ${positionals[0]}`);
    });
  },
});

const ADMIN_USAGE = 'goldmirror admin reset-password [--user NAME] [--revoke-tokens] [--stdin] [--json]';

/** Reads the new password from stdin: its first line, at most 4 KiB read. */
async function readPasswordFromStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    text += chunk.toString('utf8');
    if (text.length > 4096 || text.includes('\n')) break;
  }
  return text.split(/\r?\n/)[0] ?? '';
}

export const adminCommand = defineCommand({
  summary: 'reset a forgotten admin password (ends its sessions; optionally revokes every API token)',
  usage: ADMIN_USAGE,
  subcommands: ['reset-password'],
  options: { user: STRING, 'revoke-tokens': FLAG, stdin: FLAG, ...JSON_FLAG },
  arity: [0, 'reset-password takes no arguments (the user goes in --user NAME)'],
  async run(ctx, { values }) {
    // A password piped in (or --stdin) is used; on a terminal, or with nothing piped, one is generated.
    const piped = values.stdin || !process.stdin.isTTY ? await readPasswordFromStdin() : '';
    if (values.stdin && piped === '') throw new AppError('USAGE', '--stdin: no password on standard input');
    return ctx.withRuntime(async (runtime) => {
      const result = await resetPassword(runtime, cliActor, {
        username: values.user,
        password: piped === '' ? undefined : piped,
        revokeTokens: values['revoke-tokens'],
        dataDir: runtime.store.layout.root,
      });
      if (values.json) return printJson(result);
      const summary =
        `password of user ${result.username} reset; ${result.sessionsEnded} session(s) ended` +
        (values['revoke-tokens'] ? `; ${result.tokensRevoked} API token(s) revoked` : '') +
        (result.removedPasswordFile ? `; removed the outdated ${result.removedPasswordFile}` : '');
      if (result.generatedPassword === null) return printLine(summary);
      // The password alone on the last line of stdout, as `token create` does with tokens.
      process.stderr.write(`${summary}. The new password is shown only once:\n`);
      printLine(result.generatedPassword);
    });
  },
});
