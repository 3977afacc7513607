"""The tables of next-auth's adapters, as their documentation makes them: for the tests of
database sessions (``tests/nextauth_tables.py``) and the ingest bench's database-session
target. Plain data: importing it needs nothing else."""

# Prisma's migration of the Auth.js models (`prisma migrate diff` of the documented schema),
# without the createdAt/updatedAt bookkeeping that Prisma's client fills in.
PRISMA_POSTGRES = (
    'CREATE TABLE "User" ("id" TEXT NOT NULL, "name" TEXT, "email" TEXT, "emailVerified"'
    ' TIMESTAMP(3), "image" TEXT, CONSTRAINT "User_pkey" PRIMARY KEY ("id"))',
    'CREATE TABLE "Session" ("sessionToken" TEXT NOT NULL, "userId" TEXT NOT NULL,'
    ' "expires" TIMESTAMP(3) NOT NULL)',
    'CREATE UNIQUE INDEX "User_email_key" ON "User"("email")',
    'CREATE UNIQUE INDEX "Session_sessionToken_key" ON "Session"("sessionToken")',
    'ALTER TABLE "Session" ADD CONSTRAINT "Session_userId_fkey" FOREIGN KEY ("userId")'
    ' REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE',
)
PRISMA_MYSQL = (
    "CREATE TABLE `User` (`id` VARCHAR(191) NOT NULL, `name` VARCHAR(191) NULL, `email`"
    " VARCHAR(191) NULL, `emailVerified` DATETIME(3) NULL, `image` VARCHAR(191) NULL,"
    " UNIQUE INDEX `User_email_key`(`email`), PRIMARY KEY (`id`))"
    " DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
    "CREATE TABLE `Session` (`sessionToken` VARCHAR(191) NOT NULL, `userId` VARCHAR(191) NOT"
    " NULL, `expires` DATETIME(3) NOT NULL, UNIQUE INDEX `Session_sessionToken_key`"
    "(`sessionToken`)) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
    "ALTER TABLE `Session` ADD CONSTRAINT `Session_userId_fkey` FOREIGN KEY (`userId`)"
    " REFERENCES `User`(`id`) ON DELETE CASCADE ON UPDATE CASCADE",
)
# @auth/pg-adapter's schema.sql (its users and sessions; no index on "sessionToken").
PG_ADAPTER = (
    'CREATE TABLE users (id SERIAL, name VARCHAR(255), email VARCHAR(255), "emailVerified"'
    " TIMESTAMPTZ, image TEXT, PRIMARY KEY (id))",
    'CREATE TABLE sessions (id SERIAL, "userId" INTEGER NOT NULL, expires TIMESTAMPTZ NOT NULL,'
    ' "sessionToken" VARCHAR(255) NOT NULL, PRIMARY KEY (id))',
)
# drizzle-kit's SQL of @auth/drizzle-adapter's default tables (`defineTables`).
DRIZZLE_POSTGRES = (
    'CREATE TABLE "user" ("id" text PRIMARY KEY NOT NULL, "name" text, "email" text,'
    ' "emailVerified" timestamp, "image" text, CONSTRAINT "user_email_unique" UNIQUE("email"))',
    'CREATE TABLE "session" ("sessionToken" text PRIMARY KEY NOT NULL, "userId" text NOT NULL'
    ' REFERENCES "user"("id") ON DELETE cascade, "expires" timestamp NOT NULL)',
)
DRIZZLE_SQLITE = (
    "CREATE TABLE `user` (`id` text PRIMARY KEY NOT NULL, `name` text, `email` text,"
    " `emailVerified` integer, `image` text)",
    "CREATE UNIQUE INDEX `user_email_unique` ON `user` (`email`)",
    "CREATE TABLE `session` (`sessionToken` text PRIMARY KEY NOT NULL, `userId` text NOT NULL,"
    " `expires` integer NOT NULL, FOREIGN KEY (`userId`) REFERENCES `user`(`id`)"
    " ON UPDATE no action ON DELETE cascade)",
)
