import Shardwise

// Placeholder: this backend is being built (see the open issue).
enum _ShardwiseMPIPlaceholder {}
