/** `goldmirror settings`: the public address Macs use, the same setting the admin page shows. */
import { AppError } from '../../errors.js';
import { cliActor } from '../../services/audit.js';
import { resolvePublicAddress, updateSettings, type PublicAddress } from '../../services/settings.js';
import { FLAG, JSON_FLAG, defineCommand } from '../context.js';
import { printJson, printLine } from '../output.js';
import { red } from '../public-address.js';

const USAGE = 'goldmirror settings [--json]\n       goldmirror settings public-url URL | --clear [--json]';

function describe(address: PublicAddress): string {
  if (address.source === 'config')
    return `public address: ${address.url} (from MIRROR_PUBLIC_URL or the config file; it wins over the stored setting)`;
  if (address.source === 'database')
    return `public address: ${address.url} (set by ${address.updatedBy ?? '?'} at ${address.updatedAt ?? '?'})`;
  return 'public address: not set — no download link is offered until it is (goldmirror settings public-url http://mirror.example.lan:8080)';
}

export const settingsCommand = defineCommand({
  summary: 'show or set the public address Macs use (every Download URL starts with it)',
  usage: USAGE,
  options: { ...JSON_FLAG, clear: FLAG },
  async run(ctx, { values, positionals }) {
    const [what, url, ...rest] = positionals;
    if (what !== undefined && what !== 'public-url')
      throw new AppError('USAGE', `unknown setting ${JSON.stringify(what)}`);
    if (rest.length > 0 || (what === 'public-url' && (url === undefined) === !values.clear)) {
      throw new AppError(
        'USAGE',
        'give the public address, e.g. settings public-url http://mirror.example.lan:8080, or --clear',
      );
    }
    if (what === undefined && values.clear) throw new AppError('USAGE', '--clear goes with public-url');
    return ctx.withRuntime(async (runtime) => {
      const address =
        what === undefined
          ? await resolvePublicAddress(runtime)
          : await updateSettings(runtime, cliActor, { publicUrl: values.clear ? null : url });
      if (values.json) return printJson({ publicUrl: address });
      printLine(describe(address));
      for (const warning of address.warnings) process.stderr.write(red(`goldmirror: warning: ${warning}`) + '\n');
    });
  },
});
