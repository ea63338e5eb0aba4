/** The route table every editable collection (images, groups) shares: list and create at `/`, read and change at `/{id}`. */
import { z } from '@hono/zod-openapi';
import { created, idParam, jsonRequest, ok, routes } from './shared.js';

interface Collection<V, C, U> {
  tag: string;
  /** The thing with its article ("an image") and the plural ("images"). */
  one: string;
  many: string;
  /** What every answer carries. */
  view: V;
  create: { schema: C; description: string };
  update: { schema: U; description?: string };
}

export function collectionRoutes<V extends z.ZodType, C extends z.ZodType, U extends z.ZodType>(
  collection: Collection<V, C, U>,
) {
  const { one, many, view, create, update } = collection;
  const route = routes(collection.tag);
  const noun = one.replace(/^an? /, '');
  const params = idParam(noun);
  return {
    route,
    params,
    list: route('get', '/', `List ${many}`, ok(z.array(view), `Every ${noun}`)),
    create: route('post', '/', `Create ${one}`, created(view, 'Created'), {
      body: jsonRequest(create.schema, create.description),
    }),
    read: route('get', '/{id}', `Get ${one}`, ok(view, `The ${noun}`), { params }),
    update: route('patch', '/{id}', `Change ${one}`, ok(view, `The changed ${noun}`), {
      ...(update.description === undefined ? {} : { description: update.description }),
      params,
      body: jsonRequest(update.schema, 'The fields to change'),
    }),
  };
}
