// The cluster's control plane: requests that every node acts on and answers
// (the server API's disconnect, subscribe, unsubscribe, channels, info),
// carried by Redis Pub/Sub on channels of their own, beside the channels'
// streams. Payloads are opaque here (the server layer writes and reads them).
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "cluster/bridge.h"
#include "cluster/bridge_link.h"
#include "util/log.h"

namespace wstrace::cluster {

void Bridge::set_control_handlers(ControlHandler on_request, ControlHandler on_reply) {
  on_control_ = std::move(on_request);
  on_control_reply_ = std::move(on_reply);
}

void Bridge::subscribe_control() {
  if (!sub_->ready || sub_->ctx() == nullptr || !on_control_) return;
  const std::string control = opts_.prefix + "__control";
  const std::string reply = opts_.prefix + "__reply:" + opts_.node_id;
  control_subs_ = 2;
  auto on_message = [](redisAsyncContext*, void* r, void* priv) {
    auto* self = static_cast<Bridge*>(priv);
    auto* reply = static_cast<redisReply*>(r);
    if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    const redisReply* kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING || std::string_view(kind->str, kind->len) != "message" ||
        reply->element[1]->type != REDIS_REPLY_STRING ||
        reply->element[2]->type != REDIS_REPLY_STRING) {
      return;
    }
    const std::string_view channel(reply->element[1]->str, reply->element[1]->len);
    std::string payload(reply->element[2]->str, reply->element[2]->len);
    if (channel == self->opts_.prefix + "__control") {
      if (self->on_control_) self->on_control_(std::move(payload));
    } else if (self->on_control_reply_) {
      self->on_control_reply_(std::move(payload));
    }
  };
  redisAsyncCommand(sub_->ctx(), on_message, this, "SUBSCRIBE %b %b", control.data(),
                    control.size(), reply.data(), reply.size());
}

void Bridge::control_request(std::string payload, std::function<void(long)> done) {
  loop_.post([this, payload = std::move(payload), done = std::move(done)]() mutable {
    if (!pub_->ready || pub_->ctx() == nullptr || !link_up()) {
      done(-1);
      return;
    }
    const std::string channel = opts_.prefix + "__control";
    auto* ctx = new std::function<void(long)>(std::move(done));
    auto cb = [](redisAsyncContext*, void* r, void* priv) {
      std::unique_ptr<std::function<void(long)>> d(static_cast<std::function<void(long)>*>(priv));
      auto* reply = static_cast<redisReply*>(r);
      (*d)(reply != nullptr && reply->type == REDIS_REPLY_INTEGER ? static_cast<long>(reply->integer)
                                                                  : -1);
    };
    if (redisAsyncCommand(pub_->ctx(), cb, ctx, "PUBLISH %b %b", channel.data(), channel.size(),
                          payload.data(), payload.size()) != REDIS_OK) {
      std::unique_ptr<std::function<void(long)>> d(ctx);
      (*d)(-1);
    }
  });
}

void Bridge::control_reply(const std::string& to, std::string payload) {
  loop_.post([this, channel = opts_.prefix + "__reply:" + to, payload = std::move(payload)] {
    if (!pub_->ready || pub_->ctx() == nullptr) return;  // the asker times out
    redisAsyncCommand(pub_->ctx(), nullptr, nullptr, "PUBLISH %b %b", channel.data(),
                      channel.size(), payload.data(), payload.size());
  });
}

}  // namespace wstrace::cluster
