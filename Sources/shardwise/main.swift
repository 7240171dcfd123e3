print("shardwise")
