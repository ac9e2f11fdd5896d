// Who may subscribe to, read the history of, and publish on a channel: the
// channel's rule (subscribe = anyone | authenticated | claim; publish =
// anyone | authenticated | subscribers | claim | api) and, for "claim", the
// globs of the client's token ("channels" to subscribe, "publish" to
// publish; "{sub}" in them is the token's own user). A rule's "{sub}" is
// the asking client's user, so "user:{sub}" is each user's private channel.
//
// Without a rule (or without subscribe/publish in it) the default applies:
// anyone, or, when the server requires tokens, authenticated clients.
// Refusals are Error unauthorized (no valid token) or forbidden (a token
// that does not allow it).
#include "server/worker.h"

namespace wstrace::server {
namespace {

bool any_glob(const std::vector<std::string>& globs, std::string_view channel,
              const std::string_view* user) {
  for (const auto& g : globs) {
    if (stream::glob_match(g, channel, user)) return true;
  }
  return false;
}

}  // namespace

bool Worker::allowed(Connection& c, std::string_view channel, bool publish,
                     protocol::ErrorCode& code, std::string_view& why) {
  const std::string_view user = c.extra ? std::string_view(c.extra->user_id) : std::string_view();
  const std::string_view* who = c.authenticated ? &user : nullptr;
  const stream::ChannelRule* rule = rules_->find(channel, who);
  stream::Access access = rule ? (publish ? rule->publish : rule->subscribe) : stream::Access::Default;
  if (access == stream::Access::Default) {
    access = auth_required() ? stream::Access::Authenticated : stream::Access::Anyone;
  }
  switch (access) {
    case stream::Access::Default:
    case stream::Access::Anyone:
      return true;
    case stream::Access::Authenticated:
      if (c.authenticated) return true;
      code = protocol::ErrorCode::Unauthorized;
      why = "authentication required: connect with ?token=<JWT> or an Authorization header";
      return false;
    case stream::Access::Subscribers: {
      const pubsub::Channel::Member* m = registry_.membership(c, channel);
      if (m != nullptr && m->pending == 0) return true;
      code = c.authenticated || !auth_required() ? protocol::ErrorCode::Forbidden
                                                 : protocol::ErrorCode::Unauthorized;
      why = "only subscribers of this channel may publish on it";
      return false;
    }
    case stream::Access::Claim: {
      if (!c.authenticated) {
        code = protocol::ErrorCode::Unauthorized;
        why = "this channel needs a token that grants it";
        return false;
      }
      const auto& globs = publish ? c.extra->claim_publish : c.extra->claim_channels;
      if (any_glob(globs, channel, &user)) return true;
      code = protocol::ErrorCode::Forbidden;
      why = publish ? "your token does not allow publishing on this channel (claim 'publish')"
                    : "your token does not allow this channel (claim 'channels')";
      return false;
    }
    case stream::Access::Api:
      code = c.authenticated || !auth_required() ? protocol::ErrorCode::Forbidden
                                                 : protocol::ErrorCode::Unauthorized;
      why = "only the server API publishes on this channel";
      return false;
  }
  return false;
}

}  // namespace wstrace::server
