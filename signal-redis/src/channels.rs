//! ASP.NET Core's channel names (`RedisChannels`), with StackExchange.Redis's
//! channel prefix written in front of each with no separator, as it does.

/// The channels of one hub, named as the wire names them.
#[derive(Debug, Clone)]
pub(crate) struct Channels {
    /// The channel prefix (often empty).
    prefix: String,
    /// `{hub}:`, the start of every logical name.
    hub: String,
    /// `{prefix}{hub}:`, the start of every name on the wire.
    wire: String,
    server: String,
}

/// What a channel a message arrived on is for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Channel<'a> {
    All,
    GroupCommands,
    Ack,
    Return,
    Connection(&'a str),
    Group(&'a str),
    User(&'a str),
    /// signal nodes only: a request to list what each node holds.
    ListRequest,
    /// signal nodes only: an answer to this node's list request.
    ListReply,
    /// signal nodes only: a transport request relayed to the holder.
    RelayRequest,
    /// signal nodes only: an answer to a request this node relayed.
    RelayReply,
    /// signal nodes only: a message through a tunnel with an end here.
    Tunnel,
}

impl Channels {
    pub(crate) fn new(prefix: &str, hub: &str, server: &str) -> Self {
        Channels {
            prefix: prefix.to_owned(),
            hub: format!("{hub}:"),
            wire: format!("{prefix}{hub}:"),
            server: server.to_owned(),
        }
    }

    pub(crate) fn all(&self) -> String {
        format!("{}all", self.wire)
    }

    pub(crate) fn group_commands(&self) -> String {
        format!("{}internal:groups", self.wire)
    }

    /// Where `server` waits for acks of its group commands.
    pub(crate) fn ack(&self, server: &str) -> String {
        format!("{}internal:ack:{server}", self.wire)
    }

    /// This node's return channel as messages name it: without the prefix.
    pub(crate) fn logical_return(&self) -> String {
        format!("{}internal:return:{}", self.hub, self.server)
    }

    /// A return channel named in a message, as the wire names it.
    pub(crate) fn wire_of(&self, logical: &str) -> String {
        format!("{}{logical}", self.prefix)
    }

    pub(crate) fn connection(&self, id: &str) -> String {
        format!("{}connection:{id}", self.wire)
    }

    pub(crate) fn group(&self, name: &str) -> String {
        format!("{}group:{name}", self.wire)
    }

    pub(crate) fn user(&self, id: &str) -> String {
        format!("{}user:{id}", self.wire)
    }

    /// Where signal nodes (not ASP.NET Core's) ask each other for listings.
    pub(crate) fn list_requests(&self) -> String {
        format!("{}internal:signal:list", self.wire)
    }

    /// Where `server` receives the answers to its listing requests.
    pub(crate) fn list_replies(&self, server: &str) -> String {
        format!("{}internal:signal:listed:{server}", self.wire)
    }

    /// Where signal nodes relay transport requests to the node holding the
    /// connection.
    pub(crate) fn relay_requests(&self) -> String {
        format!("{}internal:signal:relay", self.wire)
    }

    /// Where `server` receives the answers to the requests it relayed.
    pub(crate) fn relay_replies(&self, server: &str) -> String {
        format!("{}internal:signal:relayed:{server}", self.wire)
    }

    /// Where `server` receives the messages of tunnels with an end there.
    pub(crate) fn tunnel(&self, server: &str) -> String {
        format!("{}internal:signal:tunnel:{server}", self.wire)
    }

    /// The channels every node subscribes to from the start: ASP.NET Core's,
    /// in its order, then signal's own.
    pub(crate) fn fixed(&self) -> [String; 9] {
        [
            self.all(),
            self.group_commands(),
            self.ack(&self.server),
            self.wire_of(&self.logical_return()),
            self.list_requests(),
            self.list_replies(&self.server),
            self.relay_requests(),
            self.relay_replies(&self.server),
            self.tunnel(&self.server),
        ]
    }

    /// What `channel` (as the wire names it) is for; `None` for a channel of
    /// another hub, or another node's ack or return channel.
    pub(crate) fn classify<'a>(&self, channel: &'a str) -> Option<Channel<'a>> {
        let rest = channel.strip_prefix(&self.wire)?;
        Some(match rest {
            "all" => Channel::All,
            "internal:groups" => Channel::GroupCommands,
            "internal:signal:list" => Channel::ListRequest,
            "internal:signal:relay" => Channel::RelayRequest,
            _ => {
                if let Some(server) = rest.strip_prefix("internal:signal:relayed:") {
                    return (server == self.server).then_some(Channel::RelayReply);
                }
                if let Some(server) = rest.strip_prefix("internal:signal:tunnel:") {
                    return (server == self.server).then_some(Channel::Tunnel);
                }
                if let Some(server) = rest.strip_prefix("internal:signal:listed:") {
                    return (server == self.server).then_some(Channel::ListReply);
                }
                if let Some(server) = rest.strip_prefix("internal:ack:") {
                    return (server == self.server).then_some(Channel::Ack);
                }
                if let Some(server) = rest.strip_prefix("internal:return:") {
                    return (server == self.server).then_some(Channel::Return);
                }
                if let Some(id) = rest.strip_prefix("connection:") {
                    Channel::Connection(id)
                } else if let Some(name) = rest.strip_prefix("group:") {
                    Channel::Group(name)
                } else if let Some(id) = rest.strip_prefix("user:") {
                    Channel::User(id)
                } else {
                    return None;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asp_net_cores_names_with_the_prefix_in_front() {
        let plain = Channels::new("", "MyApp.Hubs.ChatHub", "box_1");
        assert_eq!(plain.all(), "MyApp.Hubs.ChatHub:all");
        assert_eq!(
            plain.fixed(),
            [
                "MyApp.Hubs.ChatHub:all",
                "MyApp.Hubs.ChatHub:internal:groups",
                "MyApp.Hubs.ChatHub:internal:ack:box_1",
                "MyApp.Hubs.ChatHub:internal:return:box_1",
                "MyApp.Hubs.ChatHub:internal:signal:list",
                "MyApp.Hubs.ChatHub:internal:signal:listed:box_1",
                "MyApp.Hubs.ChatHub:internal:signal:relay",
                "MyApp.Hubs.ChatHub:internal:signal:relayed:box_1",
                "MyApp.Hubs.ChatHub:internal:signal:tunnel:box_1",
            ]
        );
        assert_eq!(plain.connection("c1"), "MyApp.Hubs.ChatHub:connection:c1");
        assert_eq!(plain.group("g:1"), "MyApp.Hubs.ChatHub:group:g:1");
        assert_eq!(plain.user("ada"), "MyApp.Hubs.ChatHub:user:ada");

        let prefixed = Channels::new("MyApp", "MyApp.Hubs.ChatHub", "box_1");
        assert_eq!(prefixed.all(), "MyAppMyApp.Hubs.ChatHub:all");
        // Messages name the return channel without the prefix.
        assert_eq!(
            prefixed.logical_return(),
            "MyApp.Hubs.ChatHub:internal:return:box_1"
        );
        assert_eq!(
            prefixed.wire_of(&prefixed.logical_return()),
            "MyAppMyApp.Hubs.ChatHub:internal:return:box_1"
        );
    }

    #[test]
    fn classify() {
        let c = Channels::new("p", "H", "me");
        assert_eq!(c.classify("pH:all"), Some(Channel::All));
        assert_eq!(
            c.classify("pH:internal:groups"),
            Some(Channel::GroupCommands)
        );
        assert_eq!(c.classify("pH:internal:ack:me"), Some(Channel::Ack));
        assert_eq!(c.classify("pH:internal:ack:other"), None);
        assert_eq!(c.classify("pH:internal:return:me"), Some(Channel::Return));
        assert_eq!(c.classify("pH:group:a:b"), Some(Channel::Group("a:b")));
        assert_eq!(c.classify("pH:user:u"), Some(Channel::User("u")));
        assert_eq!(
            c.classify("pH:connection:x"),
            Some(Channel::Connection("x"))
        );
        assert_eq!(c.classify("H:all"), None);
        assert_eq!(c.classify("pOther:all"), None);
        assert_eq!(c.classify("pH:nonsense"), None);
        assert_eq!(
            c.classify("pH:internal:signal:list"),
            Some(Channel::ListRequest)
        );
        assert_eq!(
            c.classify("pH:internal:signal:listed:me"),
            Some(Channel::ListReply)
        );
        assert_eq!(c.classify("pH:internal:signal:listed:other"), None);
    }
}
