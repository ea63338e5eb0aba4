/** Settings: the public address Download URLs start with. */
import { z } from '@hono/zod-openapi';
import { resolvePublicAddress, settingsPatch, updateSettings } from '../../services/settings.js';
import { PublicAddress } from './schemas.js';
import { apiApp, jsonRequest, ok, rejectAs, routes } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const route = routes('Settings');
const Settings = z.object({ publicUrl: PublicAddress });

const read = route('get', '/', 'Read the settings', ok(Settings, 'The public address'));
const update = route('patch', '/', 'Set or clear the public address', ok(Settings, 'The public address now'), {
  description: 'Refused with SETTING_LOCKED while the configuration (MIRROR_PUBLIC_URL) sets it.',
  body: jsonRequest(settingsPatch, '`publicUrl`: an http(s) URL, or null to clear it'),
});

export function settingsApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(read, async (c) => c.json({ publicUrl: await resolvePublicAddress(deps) }, 200));
  app.openapi(
    update,
    async (c) => c.json({ publicUrl: await updateSettings(deps, c.get('actor'), c.req.valid('json')) }, 200),
    rejectAs('settings'),
  );
  return app;
}
