/* "Not available" GSSAPI and LDAP symbols for the static build: Debian's libpq.a references them.
 */

/*
 * Debian builds libpq with GSSAPI (Kerberos) and LDAP, but ships no static
 * libgssapi_krb5 or libldap, so a -static link of libpq.a fails on these
 * symbols. pgboot needs neither: it authenticates with passwords/SCRAM or
 * TLS certificates. Each function below answers "failure", which makes libpq
 * behave as if built --without-gssapi --without-ldap:
 *   - gssencmode=prefer (the default) calls gss_acquire_cred to look for a
 *     credential cache; GSS_S_FAILURE means "none", so libpq skips GSS
 *     encryption and goes on with TLS or plain TCP;
 *   - a server asking for GSS authentication gets a clean libpq error;
 *   - an ldap:// line in a pg_service.conf fails at ldap_init (NULL).
 * Linked only into the static binary; a dynamic build uses the real libraries.
 * Signatures follow MIT krb5's gssapi.h and OpenLDAP's ldap.h (no headers are
 * installed for them, and C linkage does not check types).
 */
#include <stddef.h>
#include <stdint.h>

typedef uint32_t OM_uint32;

typedef struct {
  OM_uint32 length;
  void* elements;
} ShimGssOidDesc;

typedef struct {
  size_t length;
  void* value;
} ShimGssBufferDesc;

/* RFC 2744: GSS_S_FAILURE is routine error 13 in bits 16..23. */
#define SHIM_GSS_S_FAILURE (((OM_uint32)13) << 16)
#define SHIM_GSS_S_COMPLETE ((OM_uint32)0)

static char shim_gss_message[] = "GSSAPI is not available in this pgboot build";
static ShimGssOidDesc shim_hostbased_service = {0, NULL};

ShimGssOidDesc* GSS_C_NT_HOSTBASED_SERVICE = &shim_hostbased_service;

static OM_uint32 ShimGssFail(OM_uint32* minor) {
  if (minor != NULL) *minor = 0;
  return SHIM_GSS_S_FAILURE;
}

static void ShimGssEmpty(ShimGssBufferDesc* buf) {
  if (buf != NULL) {
    buf->length = 0;
    buf->value = NULL;
  }
}

OM_uint32 gss_acquire_cred(OM_uint32* minor, void* name, OM_uint32 time_req, void* mechs, int usage,
                           void** cred, void** actual_mechs, OM_uint32* time_rec) {
  (void)name, (void)time_req, (void)mechs, (void)usage, (void)time_rec;
  if (cred != NULL) *cred = NULL;
  if (actual_mechs != NULL) *actual_mechs = NULL;
  return ShimGssFail(minor);
}

OM_uint32 gss_init_sec_context(OM_uint32* minor, void* cred, void** ctx, void* target, void* mech,
                               OM_uint32 req_flags, OM_uint32 time_req, void* bindings,
                               ShimGssBufferDesc* input, void** actual_mech,
                               ShimGssBufferDesc* output, OM_uint32* ret_flags,
                               OM_uint32* time_rec) {
  (void)cred, (void)ctx, (void)target, (void)mech, (void)req_flags, (void)time_req;
  (void)bindings, (void)input, (void)time_rec;
  if (actual_mech != NULL) *actual_mech = NULL;
  if (ret_flags != NULL) *ret_flags = 0;
  ShimGssEmpty(output);
  return ShimGssFail(minor);
}

OM_uint32 gss_import_name(OM_uint32* minor, ShimGssBufferDesc* input, void* type, void** out) {
  (void)input, (void)type;
  if (out != NULL) *out = NULL;
  return ShimGssFail(minor);
}

/* libpq loops while *msg_ctx != 0 and copies `out`: one static message, then done. */
OM_uint32 gss_display_status(OM_uint32* minor, OM_uint32 status, int type, void* mech,
                             OM_uint32* msg_ctx, ShimGssBufferDesc* out) {
  (void)status, (void)type, (void)mech;
  if (minor != NULL) *minor = 0;
  if (msg_ctx != NULL) *msg_ctx = 0;
  if (out != NULL) {
    out->length = sizeof shim_gss_message - 1;
    out->value = shim_gss_message;
  }
  return SHIM_GSS_S_COMPLETE;
}

/* Nothing is ever allocated, so releasing only clears the handles. */
OM_uint32 gss_release_buffer(OM_uint32* minor, ShimGssBufferDesc* buf) {
  if (minor != NULL) *minor = 0;
  ShimGssEmpty(buf);
  return SHIM_GSS_S_COMPLETE;
}

OM_uint32 gss_release_cred(OM_uint32* minor, void** cred) {
  if (minor != NULL) *minor = 0;
  if (cred != NULL) *cred = NULL;
  return SHIM_GSS_S_COMPLETE;
}

OM_uint32 gss_release_name(OM_uint32* minor, void** name) {
  if (minor != NULL) *minor = 0;
  if (name != NULL) *name = NULL;
  return SHIM_GSS_S_COMPLETE;
}

OM_uint32 gss_delete_sec_context(OM_uint32* minor, void** ctx, ShimGssBufferDesc* output) {
  if (minor != NULL) *minor = 0;
  if (ctx != NULL) *ctx = NULL;
  ShimGssEmpty(output);
  return SHIM_GSS_S_COMPLETE;
}

OM_uint32 gss_wrap(OM_uint32* minor, void* ctx, int conf_req, OM_uint32 qop,
                   ShimGssBufferDesc* input, int* conf_state, ShimGssBufferDesc* output) {
  (void)ctx, (void)conf_req, (void)qop, (void)input;
  if (conf_state != NULL) *conf_state = 0;
  ShimGssEmpty(output);
  return ShimGssFail(minor);
}

OM_uint32 gss_unwrap(OM_uint32* minor, void* ctx, ShimGssBufferDesc* input,
                     ShimGssBufferDesc* output, int* conf_state, OM_uint32* qop) {
  (void)ctx, (void)input;
  if (conf_state != NULL) *conf_state = 0;
  if (qop != NULL) *qop = 0;
  ShimGssEmpty(output);
  return ShimGssFail(minor);
}

OM_uint32 gss_wrap_size_limit(OM_uint32* minor, void* ctx, int conf_req, OM_uint32 qop,
                              OM_uint32 req_output_size, OM_uint32* max_input) {
  (void)ctx, (void)conf_req, (void)qop, (void)req_output_size;
  if (max_input != NULL) *max_input = 0;
  return ShimGssFail(minor);
}

/* ---- LDAP (service-file lookups only) ---- */

#define SHIM_LDAP_UNAVAILABLE 0x34

void* ldap_init(const char* host, int port) {
  (void)host, (void)port;
  return NULL;
}

int ldap_set_option(void* ld, int option, const void* value) {
  (void)ld, (void)option, (void)value;
  return -1; /* LDAP_OPT_ERROR */
}

int ldap_simple_bind(void* ld, const char* who, const char* password) {
  (void)ld, (void)who, (void)password;
  return -1; /* no message id: the bind was not sent */
}

int ldap_result(void* ld, int msgid, int all, void* timeout, void** result) {
  (void)ld, (void)msgid, (void)all, (void)timeout;
  if (result != NULL) *result = NULL;
  return -1;
}

int ldap_search_st(void* ld, const char* base, int scope, const char* filter, char** attrs,
                   int attrsonly, void* timeout, void** result) {
  (void)ld, (void)base, (void)scope, (void)filter, (void)attrs, (void)attrsonly, (void)timeout;
  if (result != NULL) *result = NULL;
  return SHIM_LDAP_UNAVAILABLE;
}

int ldap_count_entries(void* ld, void* chain) {
  (void)ld, (void)chain;
  return -1;
}

void* ldap_first_entry(void* ld, void* chain) {
  (void)ld, (void)chain;
  return NULL;
}

void* ldap_get_values_len(void* ld, void* entry, const char* attr) {
  (void)ld, (void)entry, (void)attr;
  return NULL;
}

void ldap_value_free_len(void* values) { (void)values; }

int ldap_msgfree(void* msg) {
  (void)msg;
  return 0;
}

int ldap_unbind(void* ld) {
  (void)ld;
  return 0;
}

char* ldap_err2string(int err) {
  static char message[] = "LDAP is not available in this pgboot build";
  (void)err;
  return message;
}
