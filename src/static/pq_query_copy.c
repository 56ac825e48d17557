/* Keeps libpq from duplicating a query text pgboot has just handed it (a second copy of a migration). */

/*
 * PQsendQueryParams copies the text into its output buffer and then keeps a
 * strdup() of it until the result arrives, only to quote a line of it in
 * PQerrorMessage. pgboot never shows that quote (it names file:line:column from
 * the error position itself), and for a 200 MB statement the duplicate alone
 * breaks the memory bound (docs/reference.md, "Inputs pgboot refuses"). The
 * static link wraps strdup (-Wl,--wrap=strdup): the one string announced here
 * is not duplicated, which libpq handles as it does an out-of-memory strdup
 * (its source says so: "if insufficient memory, query just winds up NULL").
 * Every other strdup is the real one. A dynamic build (sanitizers, fuzzing)
 * links libpq.so, which no --wrap reaches: it keeps libpq's copy.
 */
#include <stddef.h>

char* __real_strdup(const char* s);
char* __wrap_strdup(const char* s);

static _Thread_local const char* not_copied;

void pgboot_skip_query_copy(const char* query) { not_copied = query; }

char* __wrap_strdup(const char* s) {
  if (s != NULL && s == not_copied) {
    not_copied = NULL;
    return NULL;
  }
  return __real_strdup(s);
}
