"""The dream service without Discord: the database and its migrations, the fair queue,
the job store, server settings, remembered sources and the scheduler that runs jobs on
free workers. Everything here is tested without a Discord client."""
