/** Cursor pagination as async iterators: `for await (const job of client.jobs.iterate())`. */
import type { ListParams, Page } from "./types.js";

/** Every page, fetched as the loop asks for it, from `params.cursor` (or the start) to the end. */
export async function* pages<T, P extends ListParams>(
  fetchPage: (params: P) => Promise<Page<T>>,
  params: P,
): AsyncGenerator<Page<T>, void, undefined> {
  let cursor = params.cursor;
  for (;;) {
    const page = await fetchPage({ ...params, cursor });
    yield page;
    if (!page.next_cursor) return;
    cursor = page.next_cursor;
  }
}

/** Every item of every page; `params.limit` is the page size. */
export async function* items<T, P extends ListParams>(
  fetchPage: (params: P) => Promise<Page<T>>,
  params: P,
): AsyncGenerator<T, void, undefined> {
  for await (const page of pages(fetchPage, params)) yield* page.data;
}
