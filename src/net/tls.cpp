#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace wstrace::net {
namespace {

thread_local TlsError t_error;

void take_error(const char* fallback) {
  t_error = TlsError{};
  unsigned long e = ERR_get_error();
  if (e == 0) {
    t_error.reason = fallback;
    t_error.message = fallback;
    return;
  }
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  t_error.message = buf;
  const int r = ERR_GET_REASON(e);
  switch (r) {
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
      t_error.reason = "protocol_version";
      break;
    case SSL_R_NO_SHARED_CIPHER:
      t_error.reason = "no_shared_cipher";
      break;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
      t_error.reason = "http_request";
      break;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
      t_error.reason = "eof";
      break;
    case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
    case SSL_R_BAD_RECORD_TYPE:
      t_error.reason = "bad_record";
      break;
    default:
      // 1000 + the TLS alert number: the client refused us (often our
      // certificate: unknown CA, bad certificate, expired).
      t_error.reason = r >= 1000 && r < 1256 ? "alert" : "other";
      break;
  }
  ERR_clear_error();
}

// ALPN: a WebSocket upgrade is HTTP/1.1, so that is the only protocol offered.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof kHttp11, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  // A client that offers only h2 still gets a handshake (without ALPN): its
  // upgrade request then fails on its own terms, with a clear answer.
  return SSL_TLSEXT_ERR_NOACK;
}

std::string asn1_time_text(const ASN1_TIME* t) {
  BIO* b = BIO_new(BIO_s_mem());
  if (b == nullptr) return {};
  ASN1_TIME_print(b, t);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n > 0 ? n : 0));
  BIO_free(b);
  return out;
}

}  // namespace

bool kernel_tls_available() {
  std::ifstream f("/proc/sys/net/ipv4/tcp_available_ulp");
  std::string ulps;
  std::getline(f, ulps);
  std::istringstream words(ulps);
  std::string w;
  while (words >> w) {
    if (w == "tls") return true;
  }
  return false;
}

std::shared_ptr<TlsContext> TlsContext::load(const std::string& cert_file,
                                             const std::string& key_file, std::string& error) {
  std::shared_ptr<TlsContext> t(new TlsContext());
  t->ctx_ = SSL_CTX_new(TLS_server_method());
  if (t->ctx_ == nullptr) {
    take_error("cannot create a TLS context");
    error = t_error.message;
    return nullptr;
  }
  SSL_CTX* ctx = t->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION;
  t->ktls_ = kernel_tls_available();
#ifdef SSL_OP_ENABLE_KTLS
  if (t->ktls_) opts |= SSL_OP_ENABLE_KTLS;
#else
  t->ktls_ = false;
#endif
  SSL_CTX_set_options(ctx, opts);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  // TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3's defaults.
  SSL_CTX_set_cipher_list(ctx,
                          "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS");
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx, 20000);
  static const unsigned char kSessionId[] = "wstrace";
  SSL_CTX_set_session_id_context(ctx, kSessionId, sizeof kSessionId - 1);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    take_error("cannot read the certificate");
    error = "--tls-cert " + cert_file + ": " + t_error.message;
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    take_error("cannot read the key");
    error = "--tls-key " + key_file + ": " + t_error.message;
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    take_error("the key does not match the certificate");
    error = "--tls-key " + key_file + " does not belong to the certificate in --tls-cert " +
            cert_file + ": " + t_error.message;
    return nullptr;
  }
  if (X509* leaf = SSL_CTX_get0_certificate(ctx)) {
    char name[512];
    X509_NAME_oneline(X509_get_subject_name(leaf), name, sizeof name);
    t->subject_ = name;
    t->not_after_ = asn1_time_text(X509_get0_notAfter(leaf));
  }
  return t;
}

TlsContext::~TlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

ssl_st* TlsContext::accept(int fd) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

TlsStep tls_handshake(ssl_st* ssl) {
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl);
  if (r == 1) return TlsStep::Done;
  switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return TlsStep::Again;
    case SSL_ERROR_SYSCALL:
      take_error(errno == 0 ? "eof" : "other");
      if (errno != 0 && t_error.message == "other") t_error.message = std::strerror(errno);
      return TlsStep::Failed;
    default:
      take_error("other");
      return TlsStep::Failed;
  }
}

long tls_read(ssl_st* ssl, uint8_t* buf, size_t len) {
  ERR_clear_error();
  const int n = SSL_read(ssl, buf, static_cast<int>(len > INT32_MAX ? INT32_MAX : len));
  if (n > 0) return n;
  switch (SSL_get_error(ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;  // close_notify
    case SSL_ERROR_SYSCALL:
      if (errno == 0) return 0;  // the peer closed without close_notify
      return -1;
    default:
      take_error("other");
      errno = EPROTO;
      return -1;
  }
}

long tls_write(ssl_st* ssl, const uint8_t* buf, size_t len) {
  if (len == 0) return 0;
  ERR_clear_error();
  // One record per call (partial writes are on): never more, so what
  // OpenSSL holds after a blocked write is at most kTlsRecord bytes.
  const int n = SSL_write(ssl, buf, static_cast<int>(len > kTlsRecord ? kTlsRecord : len));
  if (n > 0) return n;
  switch (SSL_get_error(ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_SYSCALL:
      if (errno == 0) errno = EPIPE;
      return -1;
    default:
      take_error("other");
      errno = EPROTO;
      return -1;
  }
}

bool tls_kernel_send(ssl_st* ssl) {
#ifdef SSL_OP_ENABLE_KTLS
  return BIO_get_ktls_send(SSL_get_wbio(ssl)) != 0;
#else
  (void)ssl;
  return false;
#endif
}

void tls_release_buffers(ssl_st* ssl) {
  if (ssl != nullptr && SSL_is_init_finished(ssl)) SSL_free_buffers(ssl);
}

void tls_free(ssl_st* ssl) {
  if (ssl == nullptr) return;
  if (SSL_is_init_finished(ssl)) {
    ERR_clear_error();
    SSL_shutdown(ssl);  // close_notify, one try: the socket is non-blocking
  }
  ERR_clear_error();
  SSL_free(ssl);
}

std::string_view tls_version(ssl_st* ssl) { return SSL_get_version(ssl); }

std::string_view tls_cipher(ssl_st* ssl) {
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl);
  return c ? SSL_CIPHER_get_name(c) : "";
}

bool tls_resumed(ssl_st* ssl) { return SSL_session_reused(ssl) == 1; }

TlsError tls_error() { return t_error; }

}  // namespace wstrace::net
