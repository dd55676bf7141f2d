"""GraphQL at `/graphql`: the domain's types live beside their domains; this package holds
what they share (request context, scopes, dataloaders, connections, errors) and the schema."""
