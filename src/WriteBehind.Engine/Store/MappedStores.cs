using System;

namespace WriteBehind.Engine.Store
{
    /// <summary>Turns the store a URI names into the mapped-table store on the same database.</summary>
    internal static class MappedStores
    {
        /// <summary>Takes the connection details of <paramref name="store"/> (not yet opened: it created nothing)
        /// and returns the store that writes into <paramref name="mapping"/>'s table instead.</summary>
        public static IProfileStore Wrap(IProfileStore store, StoreMapping mapping)
        {
            try
            {
                switch (store)
                {
                    case PostgresProfileStore pg:
                        return new PostgresMappedStore(pg.ConnectionString, pg.Description, mapping, pg.CertificateValidation);
                    case MySqlProfileStore mysql:
                        return new MySqlMappedStore(mysql.ConnectionString, mysql.Description, mapping);
                    case SqliteProfileStore sqlite:
                        return new SqliteMappedStore(sqlite.FilePath, mapping);
                    default:
                        throw new WriteBehindException(ErrorIds.StoreMappingInvalid, $"The store {store.Description} does not take a mapped table.");
                }
            }
            finally
            {
                store.Dispose();
            }
        }
    }
}
